//! The `sip-lint` example: its code path in-process, and the built binary when cargo built it
//! (`cargo test -p mcptt-sip` builds the examples before running the tests).

#[allow(dead_code)]
#[path = "../../examples/sip-lint.rs"]
mod sip_lint;

use std::path::PathBuf;

use crate::common::{data, testdata};

fn files() -> Vec<(PathBuf, Option<&'static str>)> {
    vec![
        (
            data("mcptt/register.sip"),
            Some(
                "request REGISTER call-id=3c26700a-8f4e-4a4e-bb54-0f2d6ce1b7a9@ue1.alice.mcptt.example.com",
            ),
        ),
        (
            data("mcptt/publish.sip"),
            Some("request PUBLISH call-id=pub-5b1e8a3f@192.0.2.10"),
        ),
        (
            data("mcptt/publish-403.sip"),
            Some("response 403 call-id=pub-5b1e8a3f@192.0.2.10"),
        ),
        (
            testdata("rfc4475/noreason.dat"),
            Some("response 100 call-id=noreason.asndj203insdf99223ndf"),
        ),
        (testdata("rfc4475/ltgtruri.dat"), None),
        (testdata("rfc4475/no-such-file.dat"), None),
    ]
}

/// The output for `files()`: the same with and without `--roundtrip` (every readable file here
/// round-trips).
fn expected() -> (String, bool) {
    let mut out = String::new();
    let mut all_ok = true;
    for (path, want) in files() {
        match want {
            Some(rest) => out.push_str(&format!("ok {} {rest}\n", path.display())),
            None => {
                all_ok = false;
                out.push_str(&format!("err {}: ", path.display()));
                out.push('\n');
            }
        }
    }
    (out, all_ok)
}

/// Compare outputs line by line; for `err` lines only the `err FILE: ` prefix and a non-empty
/// reason are fixed.
fn same_lines(got: &str, want: &str) {
    let got: Vec<&str> = got.lines().collect();
    let want: Vec<&str> = want.lines().collect();
    assert_eq!(got.len(), want.len(), "{got:#?}");
    for (g, w) in got.iter().zip(&want) {
        if w.starts_with("err ") {
            assert!(g.starts_with(w), "got `{g}`, want prefix `{w}`");
            assert!(g.len() > w.len() + 1, "empty reason in `{g}`");
        } else {
            assert_eq!(g, w);
        }
    }
}

fn args(roundtrip: bool) -> Vec<String> {
    let mut a: Vec<String> = if roundtrip {
        vec!["--roundtrip".into()]
    } else {
        Vec::new()
    };
    a.extend(files().into_iter().map(|(p, _)| p.display().to_string()));
    a
}

#[test]
fn lint_lines_and_status_in_process() {
    for roundtrip in [false, true] {
        let mut out = Vec::new();
        let all_ok = sip_lint::run(&args(roundtrip), &mut out).unwrap();
        let (want, want_ok) = expected();
        same_lines(&String::from_utf8(out).unwrap(), &want);
        assert_eq!(all_ok, want_ok);
    }
}

#[test]
fn lint_reports_the_parse_error_and_accepts_all_valid_vectors() {
    let bad = testdata("rfc4475/ltgtruri.dat");
    let mut out = Vec::new();
    assert!(!sip_lint::run(&[bad.display().to_string()], &mut out).unwrap());
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("start line") || text.contains("URI"),
        "{text}"
    );

    // Every accepted RFC vector and every MCPTT message is ok with --roundtrip.
    let mut ok_files = vec!["--roundtrip".to_owned()];
    for row in crate::common::table(&data("rfc4475.expect"), 6) {
        if row[2] == "accept" {
            ok_files.push(
                testdata(&format!("rfc4475/{}.dat", row[0]))
                    .display()
                    .to_string(),
            );
        }
    }
    for e in std::fs::read_dir(data("mcptt")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "sip") {
            ok_files.push(p.display().to_string());
        }
    }
    let mut out = Vec::new();
    let ok = sip_lint::run(&ok_files, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(ok, "{text}");
    assert_eq!(text.lines().count(), ok_files.len() - 1);
    assert!(text.lines().all(|l| l.starts_with("ok ")), "{text}");
}

#[test]
fn lint_without_files_fails() {
    let mut out = Vec::new();
    assert!(!sip_lint::run(&["--roundtrip".to_owned()], &mut out).unwrap());
    assert!(out.is_empty());
}

/// The example binary that `cargo test` built next to this test binary.
fn example_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/it-HASH -> target/<profile>/examples/sip-lint
    let profile_dir = exe.parent().and_then(|d| d.parent()).unwrap();
    profile_dir
        .join("examples")
        .join(format!("sip-lint{}", std::env::consts::EXE_SUFFIX))
}

#[test]
fn lint_binary_prints_the_same_and_exits_1() {
    let bin = example_binary();
    assert!(
        bin.exists(),
        "{} is missing: run `cargo test -p mcptt-sip` (it builds the examples)",
        bin.display()
    );
    for roundtrip in [false, true] {
        let out = std::process::Command::new(&bin)
            .args(args(roundtrip))
            .output()
            .unwrap();
        let (want, want_ok) = expected();
        same_lines(&String::from_utf8(out.stdout).unwrap(), &want);
        assert_eq!(out.status.code(), Some(if want_ok { 0 } else { 1 }));
    }
    let ok = std::process::Command::new(&bin)
        .arg(data("mcptt/register.sip"))
        .arg(data("mcptt/notify.sip"))
        .output()
        .unwrap();
    assert_eq!(ok.status.code(), Some(0));
    assert_eq!(String::from_utf8(ok.stdout).unwrap().lines().count(), 2);
}
