//! Developer tasks of the mcptt workspace, run through cargo aliases (`.cargo/config.toml`).
//!
//! `cargo test-all [NEXTEST ARGS]` is the README's test command and what `.ci/run` calls:
//! 1. it installs, with `apt-get`, the Debian packages whose programs the tests drive for real
//!    (Chromium and chromedriver for the IdMS login page; Kamailio, SIPp and socat for the
//!    interop tests; redis-server for `mcptt-store-redis`), when they are missing and it runs as
//!    root; otherwise it names the missing packages and the command that installs them;
//! 2. it installs `cargo-nextest` with `cargo install --locked` when it is missing;
//! 3. it runs `cargo nextest run --locked --workspace --all-features` and then the doctests
//!    (`cargo test --doc`, which nextest does not run).

use std::process::{Command, ExitCode};

/// Debian packages whose programs the test suite starts.
const APT_PACKAGES: &[&str] = &[
    "chromium",
    "chromium-driver",
    "kamailio",
    "kamailio-tls-modules",
    "sip-tester",
    "socat",
    "redis-server",
];

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("test-all") => match test_all(args.collect()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("cargo test-all: {message}");
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!("usage: cargo test-all [NEXTEST ARGS]");
            ExitCode::from(2)
        }
    }
}

fn test_all(nextest_args: Vec<String>) -> Result<(), String> {
    install_apt_packages()?;
    if !succeeds(Command::new("cargo").args(["nextest", "--version"])) {
        run(Command::new("cargo").args(["install", "--locked", "cargo-nextest"]))?;
    }
    run(Command::new("cargo")
        .args([
            "nextest",
            "run",
            "--locked",
            "--workspace",
            "--all-features",
        ])
        .args(&nextest_args))?;
    run(Command::new("cargo").args(["test", "--locked", "--workspace", "--all-features", "--doc"]))
}

fn install_apt_packages() -> Result<(), String> {
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|package| !dpkg_installed(package))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.join(" ");
    if !is_root() {
        return Err(format!(
            "the tests need these Debian packages: {list}\n  install them with: \
             sudo apt-get install -y --no-install-recommends {list}"
        ));
    }
    eprintln!("cargo test-all: installing {list}");
    // Never let a package start its own daemon: the tests start their own Kamailio and Redis on
    // loopback ports. A policy-rc.d that exits 101 blocks it for the duration of the install.
    let policy = "/usr/sbin/policy-rc.d";
    let had_policy = std::path::Path::new(policy).exists();
    if !had_policy {
        std::fs::write(policy, "#!/bin/sh\nexit 101\n").map_err(|e| format!("{policy}: {e}"))?;
        run(Command::new("chmod").args(["+x", policy]))?;
    }
    let result = run(Command::new("apt-get").arg("update").arg("-qq")).and_then(|()| {
        run(Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing))
    });
    if !had_policy {
        // Best effort: a leftover policy file only stops daemons from starting on install.
        let _ = std::fs::remove_file(policy);
    }
    result
}

fn dpkg_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("install ok installed"))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

fn succeeds(command: &mut Command) -> bool {
    command.output().is_ok_and(|out| out.status.success())
}

fn run(command: &mut Command) -> Result<(), String> {
    let status = command
        .status()
        .map_err(|e| format!("cannot start {command:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{command:?} failed ({status})"))
    }
}
