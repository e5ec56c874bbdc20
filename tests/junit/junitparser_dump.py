"""Read a junit.xml with junitparser (PyPI) and print what it saw as JSON, for
tests/junit_consumers.rs. Usage: python junitparser_dump.py JUNIT.XML

Output (the same shape as junit2json_dump.cjs):
{"suites": [{"name", "timestamp", "hostname", "tests", "failures", "errors", "skipped",
             "properties": [[name, value], ...],
             "cases": [{"name", "classname", "status", "results", "message", "text", "time",
                        "system_out"}]}]}
status is pass | fail | error | skip as junitparser classifies the testcase; results is how many
result elements it found (at most one is expected).
"""

import json
import sys

from junitparser import Error, Failure, JUnitXml, Skipped, TestSuite


def case_status(case):
    if case.is_passed:
        return "pass"
    if case.is_failure:
        return "fail"
    if case.is_error:
        return "error"
    if case.is_skipped:
        return "skip"
    raise SystemExit(f"junitparser: testcase {case.name!r} has no known status")


def dump_case(case):
    results = case.result
    first = results[0] if results else None
    if first is not None and not isinstance(first, (Failure, Error, Skipped)):
        raise SystemExit(f"junitparser: testcase {case.name!r}: unexpected result {first!r}")
    return {
        "name": case.name,
        "classname": case.classname,
        "status": case_status(case),
        "results": len(results),
        "message": first.message if first is not None else None,
        "text": first.text if first is not None else None,
        "time": case.time,
        "system_out": case.system_out,
    }


def dump_suite(suite):
    return {
        "name": suite.name,
        "timestamp": suite.timestamp,
        "hostname": suite.hostname,
        "tests": suite.tests,
        "failures": suite.failures,
        "errors": suite.errors,
        "skipped": suite.skipped,
        "properties": [[p.name, p.value] for p in suite.properties()],
        "cases": [dump_case(c) for c in suite],
    }


def main():
    xml = JUnitXml.fromfile(sys.argv[1])
    suites = [xml] if isinstance(xml, TestSuite) else list(xml)
    json.dump({"suites": [dump_suite(s) for s in suites]}, sys.stdout)


if __name__ == "__main__":
    main()
