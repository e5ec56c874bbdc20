// Read a junit.xml with junit2json (npm) through its API and print what it saw as JSON, for
// tests/junit_consumers.rs. Usage: node junit2json_dump.cjs JUNIT2JSON_PACKAGE_DIR JUNIT.XML
//
// Output: the same shape as junitparser_dump.py (see there). junit2json's default parse turns
// numeric-looking attribute values into numbers; names, messages and property values are
// turned back into strings here, times and counts stay numbers.
'use strict';

const fs = require('fs');
const [pkg, file] = process.argv.slice(2);
if (!pkg || !file) {
  console.error('usage: node junit2json_dump.cjs JUNIT2JSON_PACKAGE_DIR JUNIT.XML');
  process.exit(2);
}
const { parse } = require(pkg);

const str = (v) => (v === undefined || v === null ? null : String(v));

function dumpCase(c) {
  const kinds = [
    ['failure', 'fail'],
    ['error', 'error'],
    ['skipped', 'skip'],
  ].filter(([tag]) => Array.isArray(c[tag]));
  const results = kinds.reduce((n, [tag]) => n + c[tag].length, 0);
  const first = kinds.length ? c[kinds[0][0]][0] : null;
  return {
    name: str(c.name),
    classname: str(c.classname),
    status: kinds.length ? kinds[0][1] : 'pass',
    results,
    message: first ? str(first.message) : null,
    text: first ? str(first.inner) : null,
    time: c.time === undefined ? null : c.time,
    system_out: c['system-out'] ? c['system-out'].join('') : null,
  };
}

function dumpSuite(s) {
  return {
    name: str(s.name),
    timestamp: str(s.timestamp),
    hostname: str(s.hostname),
    tests: s.tests === undefined ? null : s.tests,
    failures: s.failures === undefined ? null : s.failures,
    errors: s.errors === undefined ? null : s.errors,
    skipped: s.skipped === undefined ? null : s.skipped,
    properties: (s.properties || []).map((p) => [str(p.name), str(p.value)]),
    cases: (s.testcase || []).map(dumpCase),
  };
}

(async () => {
  const root = await parse(fs.readFileSync(file, 'utf8'));
  if (!root) throw new Error(`junit2json: ${file} has no <testsuites> or <testsuite>`);
  // <testsuites> parses to { testsuite: [...] }, a lone <testsuite> to the suite itself.
  const suites = 'testcase' in root ? [root] : root.testsuite || [];
  process.stdout.write(JSON.stringify({ suites: suites.map(dumpSuite) }));
})().catch((e) => {
  console.error(`junit2json: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});
