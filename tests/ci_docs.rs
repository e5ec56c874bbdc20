//! docs/ci.md's jobs are YAML a CI reads: each block parses, the GitHub workflow runs the audit
//! and keeps junit.xml and the report folder whatever the verdict, and the GitLab job hands
//! junit.xml to `artifacts:reports:junit`.

use serde_yaml_ng::Value;

fn blocks() -> Vec<Value> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/ci.md")).unwrap();
    doc.split("```yaml\n")
        .skip(1)
        .map(|b| {
            let yaml = &b[..b.find("```").expect("closed block")];
            serde_yaml_ng::from_str(yaml).unwrap_or_else(|e| panic!("docs/ci.md: {e}\n{yaml}"))
        })
        .collect()
}

fn steps(v: &Value) -> Vec<&Value> {
    v["jobs"]["audit"]["steps"]
        .as_sequence()
        .expect("jobs.audit.steps")
        .iter()
        .collect()
}

#[test]
fn the_github_workflow_audits_and_keeps_the_evidence() {
    let all = blocks();
    let gh = all
        .iter()
        .find(|b| b.get("jobs").is_some())
        .expect("a GitHub workflow");
    let steps = steps(gh);
    let runs: Vec<&str> = steps.iter().filter_map(|s| s["run"].as_str()).collect();
    assert!(runs
        .iter()
        .any(|r| r.contains("bootaudit run --iso") && r.contains("--out audit-report")));
    assert!(
        runs.iter().any(|r| r.contains("qemu-system-x86")),
        "installs QEMU"
    );
    assert!(
        runs.iter()
            .any(|r| r.contains("/dev/kvm") || r.contains("kvm")),
        "enables KVM"
    );
    let upload = steps
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("actions/upload-artifact@"))
        })
        .expect("uploads the report folder");
    assert_eq!(upload["if"].as_str(), Some("always()"));
    assert_eq!(upload["with"]["path"].as_str(), Some("audit-report/"));
    let junit = steps
        .iter()
        .find(|s| s["with"]["report_paths"].as_str() == Some("audit-report/junit.xml"))
        .expect("publishes junit.xml");
    assert_eq!(junit["if"].as_str(), Some("always()"));
}

#[test]
fn the_gitlab_job_reports_junit() {
    let all = blocks();
    let gl = all
        .iter()
        .find(|b| b.get("audit-image").is_some())
        .expect("a GitLab job");
    let job = &gl["audit-image"];
    let script: Vec<&str> = job["script"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|s| s.as_str())
        .collect();
    assert!(script
        .iter()
        .any(|s| s.contains("bootaudit run --iso") && s.contains("--out audit-report")));
    assert_eq!(job["artifacts"]["when"].as_str(), Some("always"));
    assert_eq!(
        job["artifacts"]["reports"]["junit"].as_str(),
        Some("audit-report/junit.xml")
    );
    assert_eq!(job["artifacts"]["paths"][0].as_str(), Some("audit-report/"));
}
