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
//!
//! `cargo flow-pgo [FLOW ARGS]` builds the `flow` binary with profile-guided optimisation and
//! BOLT's post-link layout, and runs it with the given arguments (e.g. `-- --ues 1000 --login
//! sim --rounds 10`):
//! 1. it finds an `llvm-profdata` that reads this rustc's profiles: rustup's `llvm-tools`
//!    component first, then the newest on the `PATH` or in `/usr/lib/llvm-N/bin` if it is LLVM
//!    19 or newer; as root on Debian it installs `llvm-19` when there is none;
//! 2. it builds `flow` instrumented (`-Cprofile-generate`, in `target/pgo/gen`) and trains it on
//!    load runs of each login method ([`TRAINING`]), merging their profiles into
//!    `target/pgo/flow.profdata`;
//! 3. it builds `flow` again with that profile (`-Cprofile-use`, in `target/pgo/use`);
//! 4. it finds `llvm-bolt` and `merge-fdata` the same way (Debian: `bolt-19`), instruments that
//!    build with BOLT, trains the copy on the same runs, and lays the build out by that profile
//!    into `target/pgo/flow`, which it runs.
//!
//! The floors `flow` measures live in the same binary, so they are built the same way.

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

/// The training runs of `cargo flow-pgo`: load runs of the instrumented `flow`, one per login
/// method, so that every server path the measured runs take is in the profile.
const TRAINING: &[&[&str]] = &[
    &["--ues", "1000", "--login", "sim"],
    &["--ues", "300", "--login", "password", "--concurrency", "16"],
    &[
        "--ues",
        "300",
        "--login",
        "two-factor",
        "--concurrency",
        "128",
    ],
];

/// The oldest LLVM whose `llvm-profdata` was seen to read rustc 1.95's profiles (LLVM 22):
/// Debian 12's LLVM 14 refuses them ("unsupported instrumentation profile format version").
/// BOLT is taken from LLVM 19 or newer too.
const MIN_LLVM: u32 = 19;

/// The Debian packages `cargo flow-pgo` installs when it finds no recent enough
/// `llvm-profdata` or `llvm-bolt` (the newest LLVM of Debian 12).
const PROFDATA_PACKAGE: &str = "llvm-19";
/// See [`PROFDATA_PACKAGE`].
const BOLT_PACKAGE: &str = "bolt-19";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (name, result) = match args.next().as_deref() {
        Some("test-all") => ("test-all", test_all(args.collect())),
        Some("flow-pgo") => ("flow-pgo", flow_pgo(args.collect())),
        _ => {
            eprintln!("usage: cargo test-all [NEXTEST ARGS] | cargo flow-pgo [FLOW ARGS]");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("cargo {name}: {message}");
            ExitCode::FAILURE
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
    install_debian_packages(APT_PACKAGES)
}

fn install_debian_packages(packages: &[&str]) -> Result<(), String> {
    let missing: Vec<&str> = packages
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
            "these Debian packages are needed: {list}\n  install them with: \
             sudo apt-get install -y --no-install-recommends {list}"
        ));
    }
    eprintln!("cargo xtask: installing {list}");
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

fn flow_pgo(mut flow_args: Vec<String>) -> Result<(), String> {
    // `cargo flow-pgo -- --ues 1000`: the `--` is cargo's habit, not an argument of `flow`.
    if flow_args.first().is_some_and(|a| a == "--") {
        flow_args.remove(0);
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("the xtask crate has no parent directory")?
        .to_path_buf();
    let pgo = root.join("target").join("pgo");
    let (raw, profile) = (pgo.join("raw"), pgo.join("flow.profdata"));
    let profdata = find_profdata()?;
    let build = |dir: &str, flag: String| -> Result<std::path::PathBuf, String> {
        let flags = match std::env::var("RUSTFLAGS") {
            Ok(own) if !own.trim().is_empty() => format!("{own} {flag}"),
            _ => flag,
        };
        run(Command::new("cargo")
            .current_dir(&root)
            .env("RUSTFLAGS", flags)
            .args([
                "build",
                "--locked",
                "--release",
                "-p",
                "mcptt-examples",
                "--bin",
                "flow",
            ])
            .arg("--target-dir")
            .arg(pgo.join(dir)))?;
        Ok(pgo.join(dir).join("release").join("flow"))
    };
    let instrumented = build("gen", format!("-Cprofile-generate={}", raw.display()))?;
    // Build scripts of the instrumented build write profiles too: only the training counts.
    if raw.exists() {
        std::fs::remove_dir_all(&raw).map_err(at(&raw))?;
    }
    train(&instrumented)?;
    let mut merge = Command::new(&profdata);
    merge.arg("merge").arg("-o").arg(&profile);
    for entry in std::fs::read_dir(&raw).map_err(at(&raw))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().is_some_and(|x| x == "profraw") {
            merge.arg(path);
        }
    }
    run(&mut merge).map_err(|e| {
        format!(
            "{e}\n  this llvm-profdata may be older than rustc's LLVM ({}); \
             `rustup component add llvm-tools` installs a matching one",
            rustc_llvm_major().map_or_else(|| "?".to_owned(), |m| m.to_string())
        )
    })?;
    // `--emit-relocs` keeps the relocations BOLT needs to move functions; the code is the same.
    let optimised = build(
        "use",
        format!(
            "-Cprofile-use={} -Clink-arg=-Wl,--emit-relocs",
            profile.display()
        ),
    )?;
    let bolted = bolt(&optimised, &pgo)?;
    run(Command::new(bolted).args(&flow_args))
}

/// Runs the [`TRAINING`] load runs on `flow` (an instrumented build, whose profiles the runs
/// write as they end).
fn train(flow: &std::path::Path) -> Result<(), String> {
    for args in TRAINING {
        eprintln!("cargo flow-pgo: training: flow {}", args.join(" "));
        run(Command::new(flow)
            .args(*args)
            .stdout(std::process::Stdio::null()))?;
    }
    Ok(())
}

/// BOLT's post-link layout of the PGO build `flow`: instruments it, trains the instrumented
/// copy, merges its profiles and writes `pgo/flow` laid out by them (hot blocks and functions
/// together, cold ones split off).
fn bolt(flow: &std::path::Path, pgo: &std::path::Path) -> Result<std::path::PathBuf, String> {
    let tools = find_tool("llvm-bolt", BOLT_PACKAGE)?;
    let bolt = tools.join("llvm-bolt");
    let (dir, instrumented, out) = (
        pgo.join("bolt"),
        pgo.join("flow-bolt-instrumented"),
        pgo.join("flow"),
    );
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(at(&dir))?;
    }
    std::fs::create_dir_all(&dir).map_err(at(&dir))?;
    run(Command::new(&bolt)
        .arg(flow)
        .arg("-instrument")
        .arg(format!(
            "--instrumentation-file={}",
            dir.join("flow").display()
        ))
        .arg("--instrumentation-file-append-pid")
        .arg("-o")
        .arg(&instrumented)
        .stdout(std::process::Stdio::null()))?;
    train(&instrumented)?;
    let merged = pgo.join("flow.fdata");
    let file = std::fs::File::create(&merged).map_err(at(&merged))?;
    let mut merge = Command::new(tools.join("merge-fdata"));
    merge.stdout(file);
    for entry in std::fs::read_dir(&dir).map_err(at(&dir))? {
        merge.arg(entry.map_err(|e| e.to_string())?.path());
    }
    run(&mut merge)?;
    run(Command::new(&bolt)
        .arg(flow)
        .arg(format!("-data={}", merged.display()))
        .args([
            "-reorder-blocks=ext-tsp",
            "-reorder-functions=cdsort",
            "-split-functions",
            "-split-all-cold",
            "-split-eh",
            "-icf=1",
            "-use-gnu-stack",
        ])
        .arg("-o")
        .arg(&out)
        .stdout(std::process::Stdio::null()))?;
    Ok(out)
}

/// An `llvm-profdata` for this rustc's profiles: rustup's, else the newest LLVM's of at least
/// [`MIN_LLVM`] (see [`find_tool`]).
fn find_profdata() -> Result<std::path::PathBuf, String> {
    if let Some(found) = rustup_profdata() {
        return Ok(found);
    }
    find_tool("llvm-profdata", PROFDATA_PACKAGE)
        .map(|dir| dir.join("llvm-profdata"))
        .map_err(|e| format!("{e}\n  or run `rustup component add llvm-tools`"))
}

/// The directory of the newest LLVM's `tool` on the `PATH` or in `/usr/lib/llvm-N/bin`, of LLVM
/// [`MIN_LLVM`] or newer; as root on Debian, installs `package` when there is none.
fn find_tool(tool: &str, package: &str) -> Result<std::path::PathBuf, String> {
    let recent = || {
        newest_tool(tool)
            .filter(|(v, _)| *v >= MIN_LLVM)
            .and_then(|(_, path)| path.parent().map(std::path::Path::to_path_buf))
    };
    if let Some(found) = recent() {
        return Ok(found);
    }
    install_debian_packages(&[package])
        .map_err(|e| format!("no {tool} of LLVM {MIN_LLVM} or newer ({e})"))?;
    recent().ok_or_else(|| format!("{package} installed no {tool}"))
}

/// rustup's `llvm-tools` component: `<sysroot>/lib/rustlib/<host>/bin/llvm-profdata`.
fn rustup_profdata() -> Option<std::path::PathBuf> {
    let sysroot = output(Command::new("rustc").args(["--print", "sysroot"]))?;
    let vv = output(Command::new("rustc").arg("-vV"))?;
    let host = rustc_vv_field(&vv, "host")?;
    let path = std::path::Path::new(sysroot.trim())
        .join("lib/rustlib")
        .join(host)
        .join("bin/llvm-profdata");
    path.exists().then_some(path)
}

/// The newest `tool` (`llvm-profdata`, `llvm-bolt`) on the `PATH` or in Debian's
/// `/usr/lib/llvm-N/bin`, with its LLVM major version (0 when its name and directory do not
/// tell), as the path it resolves to: a versioned name (`llvm-bolt-19`) links into
/// `/usr/lib/llvm-19/bin`, where its companions (`merge-fdata`) are. Only a path whose file
/// is named `tool` itself counts.
fn newest_tool(tool: &str) -> Option<(u32, std::path::PathBuf)> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<std::path::PathBuf> = std::env::split_paths(&path).collect();
    if let Ok(entries) = std::fs::read_dir("/usr/lib") {
        dirs.extend(entries.flatten().map(|e| e.path().join("bin")));
    }
    let mut best: Option<(u32, std::path::PathBuf)> = None;
    for dir in dirs {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name();
            let Some(named) = tool_version(tool, &name.to_string_lossy(), &dir.to_string_lossy())
            else {
                continue;
            };
            // Where the link leads: `/usr/bin/llvm-bolt-19` to `/usr/lib/llvm-19/bin/llvm-bolt`.
            let Ok(real) = entry.path().canonicalize() else {
                continue;
            };
            let in_real_dir = real
                .parent()
                .and_then(|d| tool_version(tool, tool, &d.to_string_lossy()));
            let v = named.max(in_real_dir.unwrap_or(0));
            if real.file_name().is_some_and(|f| f == tool)
                && best.as_ref().is_none_or(|(b, _)| v > *b)
            {
                best = Some((v, real));
            }
        }
    }
    best
}

/// The LLVM major version of `tool` found as `file` in `dir`: from a Debian versioned name
/// (`llvm-profdata-19`) or directory (`/usr/lib/llvm-19/bin`); 0 for a plain name of unknown
/// version (taken only when nothing newer is there).
fn tool_version(tool: &str, file: &str, dir: &str) -> Option<u32> {
    if let Some(v) = file
        .strip_prefix(tool)
        .and_then(|rest| rest.strip_prefix('-'))
    {
        return v.parse().ok();
    }
    if file != tool {
        return None;
    }
    Some(
        dir.strip_suffix("/bin")
            .and_then(|d| d.rsplit_once("/llvm-"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0),
    )
}

/// The LLVM major version rustc is built on (`LLVM version: 22.1.2` in `rustc -vV`).
fn rustc_llvm_major() -> Option<u32> {
    let vv = output(Command::new("rustc").arg("-vV"))?;
    rustc_vv_field(&vv, "LLVM version")?
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// A `name: value` line of `rustc -vV`.
fn rustc_vv_field<'a>(vv: &'a str, name: &str) -> Option<&'a str> {
    vv.lines().find_map(|line| {
        line.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::trim)
    })
}

/// An I/O error on `path`, as a message naming it.
fn at(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> String + '_ {
    move |e| format!("{}: {e}", path.display())
}

/// What a command printed on stdout, when it ran and succeeded.
fn output(command: &mut Command) -> Option<String> {
    let out = command.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustc_vv_fields_are_read_by_name() {
        let vv = "rustc 1.95.0 (59807616e 2026-04-14)\nbinary: rustc\n\
                  host: x86_64-unknown-linux-gnu\nrelease: 1.95.0\nLLVM version: 22.1.2\n";
        assert_eq!(rustc_vv_field(vv, "host"), Some("x86_64-unknown-linux-gnu"));
        assert_eq!(rustc_vv_field(vv, "LLVM version"), Some("22.1.2"));
        assert_eq!(rustc_vv_field(vv, "commit-hash"), None);
    }

    #[test]
    fn tool_versions_come_from_debian_names_and_directories() {
        let pd = "llvm-profdata";
        assert_eq!(tool_version(pd, "llvm-profdata-19", "/usr/bin"), Some(19));
        assert_eq!(tool_version(pd, pd, "/usr/lib/llvm-19/bin"), Some(19));
        assert_eq!(tool_version(pd, pd, "/usr/lib/llvm-14/bin"), Some(14));
        assert_eq!(tool_version(pd, pd, "/usr/bin"), Some(0));
        assert_eq!(tool_version(pd, "llvm-profdata-x", "/usr/bin"), None);
        assert_eq!(tool_version(pd, "llvm-cov", "/usr/lib/llvm-19/bin"), None);
        assert_eq!(
            tool_version("llvm-bolt", "llvm-bolt-19", "/usr/bin"),
            Some(19)
        );
        assert_eq!(
            tool_version("llvm-bolt", "llvm-bolt-heatmap", "/usr/bin"),
            None
        );
    }
}
