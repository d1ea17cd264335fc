//! `sip-lint`: check SIP messages stored in files.
//!
//! ```text
//! cargo run -q --release -p mcptt-sip --example sip-lint -- [--roundtrip] FILE...
//! ```
//!
//! Each file holds one message (datagram style: the body is Content-Length bytes, trailing
//! bytes are ignored). For each file one line is printed:
//!
//! - `ok FILE request METHOD call-id=VALUE` or `ok FILE response CODE call-id=VALUE`
//! - `err FILE: REASON` when the file cannot be read, the message does not parse, or
//!   [`Message::validate`] finds a malformed header.
//!
//! With `--roundtrip` each message is also encoded and parsed again, and any difference (in the
//! re-parsed message or in its encoding) prints `err FILE: roundtrip mismatch`.
//! The exit status is 0 when every file is ok, 1 otherwise (including usage errors).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use mcptt_sip::{Bytes, Message};

/// What to print for one file: `Ok(line)` or `Err(line)`, both without the newline.
pub(crate) fn lint_file(path: &Path, roundtrip: bool) -> Result<String, String> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("err {shown}: cannot read: {e}"))?;
    lint_bytes(&shown.to_string(), Bytes::from(bytes), roundtrip)
}

/// The check itself, on bytes already read (the integration tests call this too).
pub(crate) fn lint_bytes(name: &str, bytes: Bytes, roundtrip: bool) -> Result<String, String> {
    let msg = Message::parse(bytes).map_err(|e| format!("err {name}: {e}"))?;
    msg.validate().map_err(|e| format!("err {name}: {e}"))?;
    if roundtrip {
        let encoded = msg.encode();
        match Message::parse(encoded.clone()) {
            Ok(again) if again == msg && again.encode() == encoded => {}
            _ => return Err(format!("err {name}: roundtrip mismatch")),
        }
    }
    let kind = match &msg {
        Message::Request(r) => format!("request {}", r.method()),
        Message::Response(r) => format!("response {}", r.status()),
    };
    let Some(call_id) = msg.call_id() else {
        return Err(format!("err {name}: no Call-ID"));
    };
    Ok(format!("ok {name} {kind} call-id={call_id}"))
}

/// Run over the command-line arguments (without the program name), print to `out`, and return
/// whether every file was ok.
pub(crate) fn run(args: &[String], out: &mut dyn Write) -> std::io::Result<bool> {
    let mut roundtrip = false;
    let mut files = Vec::new();
    let mut options_done = false;
    for arg in args {
        match arg.as_str() {
            "--roundtrip" if !options_done => roundtrip = true,
            "--" if !options_done => options_done = true,
            _ => files.push(arg),
        }
    }
    if files.is_empty() {
        eprintln!("usage: sip-lint [--roundtrip] FILE...");
        return Ok(false);
    }
    let mut all_ok = true;
    for file in files {
        match lint_file(Path::new(file), roundtrip) {
            Ok(line) => writeln!(out, "{line}")?,
            Err(line) => {
                all_ok = false;
                writeln!(out, "{line}")?;
            }
        }
    }
    Ok(all_ok)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let stdout = std::io::stdout();
    match run(&args, &mut stdout.lock()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("sip-lint: cannot write output: {e}");
            ExitCode::from(1)
        }
    }
}
