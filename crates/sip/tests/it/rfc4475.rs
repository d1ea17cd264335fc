//! RFC 4475 torture messages, driven by `tests/data/rfc4475.expect`.
//!
//! One `#[test]` per message (so a failure names the vector); each reads its row of the
//! expectations table, applies the generic check of its verdict, then the message's own typed
//! checks below.

use mcptt_sip::{Bytes, Message, Policy};

use crate::common::{check_error, data, read, table, testdata};

struct Row {
    class: String,
    verdict: String,
    stage: String,
    status: String,
    mentions: String,
}

fn row(name: &str) -> Row {
    let rows = table(&data("rfc4475.expect"), 6);
    let mut found = rows.into_iter().filter(|r| r[0] == name);
    let r = found
        .next()
        .unwrap_or_else(|| panic!("{name}: no row in rfc4475.expect"));
    assert!(found.next().is_none(), "{name}: two rows in rfc4475.expect");
    let mut it = r.into_iter().skip(1);
    let mut next = || it.next().unwrap();
    Row {
        class: next(),
        verdict: next(),
        stage: next(),
        status: next(),
        mentions: next(),
    }
}

fn bytes(name: &str) -> Bytes {
    read(&testdata(&format!("rfc4475/{name}.dat")))
}

/// Parse, validate, encode byte for byte (the first `len` bytes of the input), and re-parse.
pub(crate) fn accept(who: &str, input: &Bytes) -> Message {
    let msg = Message::parse(input.clone()).unwrap_or_else(|e| panic!("{who}: parse: {e}"));
    if let Err(e) = msg.validate() {
        panic!("{who}: validate: {e}");
    }
    let encoded = msg.encode();
    assert!(
        input.starts_with(&encoded),
        "{who}: encode() differs from the input:\n{}\n--- input ---\n{}",
        String::from_utf8_lossy(&encoded),
        String::from_utf8_lossy(input)
    );
    let again = Message::parse(encoded).unwrap_or_else(|e| panic!("{who}: re-parse: {e}"));
    assert!(again == msg, "{who}: parse(encode(m)) != m");
    msg
}

fn run(name: &str) -> Option<Message> {
    let row = row(name);
    let input = bytes(name);
    match row.verdict.as_str() {
        "accept" => Some(accept(name, &input)),
        "reject" => {
            let (stage, err) = match Message::parse(input) {
                Err(e) => ("parse", e),
                Ok(m) => match m.validate() {
                    Err(e) => ("validate", e),
                    Ok(()) => panic!("{name} ({}): accepted, must be rejected", row.class),
                },
            };
            // `validate` rows may also be caught earlier by parse (a stricter parser is fine);
            // `parse` rows (start line, framing) must not get past parse.
            assert!(
                row.stage == "any" || row.stage == stage || row.stage == "validate",
                "{name}: rejected by {stage} ({err}), expected by {}",
                row.stage
            );
            check_error(name, &err, &row.status, &row.mentions).unwrap();
            None
        }
        "owes" => {
            if row.stage == "any" {
                // The first of parse, validate() and check() that fails owes the status.
                let err = match Message::parse(input) {
                    Err(e) => e,
                    Ok(m) => match m.validate() {
                        Err(e) => e,
                        Ok(()) => {
                            let r = m.as_request().unwrap_or_else(|| panic!("{name}: request"));
                            r.check(&Policy::default()).err().unwrap_or_else(|| {
                                panic!("{name}: accepted, expected {}", row.status)
                            })
                        }
                    },
                };
                check_error(name, &err, &row.status, &row.mentions).unwrap();
                return None;
            }
            let m = accept(name, &input);
            let policy = match row.stage.as_str() {
                "check" => Policy::default(),
                "check:proxy" => Policy {
                    proxy: true,
                    ..Policy::default()
                },
                "check:sdp" => Policy {
                    content_types: vec!["application/sdp".to_owned()],
                    ..Policy::default()
                },
                other => panic!("{name}: unknown stage {other}"),
            };
            let r = m
                .as_request()
                .unwrap_or_else(|| panic!("{name}: expected a request"));
            let err = r
                .check(&policy)
                .err()
                .unwrap_or_else(|| panic!("{name}: check() passed, expected {}", row.status));
            check_error(name, &err, &row.status, &row.mentions).unwrap();
            Some(m)
        }
        other => panic!("{name}: unknown verdict {other}"),
    }
}

#[test]
fn every_vector_has_exactly_one_row() {
    let mut on_disk: Vec<String> = std::fs::read_dir(testdata("rfc4475"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_suffix(".dat").map(str::to_owned)
        })
        .collect();
    on_disk.sort();
    let mut in_table: Vec<String> = table(&data("rfc4475.expect"), 6)
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    in_table.sort();
    assert_eq!(on_disk, in_table);
    assert_eq!(
        on_disk.len(),
        50,
        "49 RFC 4475 messages plus the archive's test.dat"
    );
}

macro_rules! vectors {
    ($($f:ident = $name:literal;)*) => {$(
        #[test]
        fn $f() {
            let msg = run($name);
            typed($name, msg);
        }
    )*};
}

vectors! {
    wsinv = "wsinv";
    intmeth = "intmeth";
    esc01 = "esc01";
    escnull = "escnull";
    esc02 = "esc02";
    lwsdisp = "lwsdisp";
    longreq = "longreq";
    dblreq = "dblreq";
    semiuri = "semiuri";
    transports = "transports";
    mpart01 = "mpart01";
    unreason = "unreason";
    noreason = "noreason";
    badinv01 = "badinv01";
    clerr = "clerr";
    ncl = "ncl";
    scalar02 = "scalar02";
    scalarlg = "scalarlg";
    quotbal = "quotbal";
    ltgtruri = "ltgtruri";
    lwsruri = "lwsruri";
    lwsstart = "lwsstart";
    trws = "trws";
    escruri = "escruri";
    baddate = "baddate";
    regbadct = "regbadct";
    badaspec = "badaspec";
    baddn = "baddn";
    badvers = "badvers";
    mismatch01 = "mismatch01";
    mismatch02 = "mismatch02";
    bigcode = "bigcode";
    badbranch = "badbranch";
    insuf = "insuf";
    unkscm = "unkscm";
    novelsc = "novelsc";
    unksm2 = "unksm2";
    bext01 = "bext01";
    invut = "invut";
    regaut01 = "regaut01";
    multi01 = "multi01";
    mcl01 = "mcl01";
    bcast = "bcast";
    zeromf = "zeromf";
    cparam01 = "cparam01";
    cparam02 = "cparam02";
    regescrt = "regescrt";
    sdp01 = "sdp01";
    inv2543 = "inv2543";
    test_dat = "test";
}

/// The per-message checks: typed values the RFC text names, and the semantic status owed.
fn typed(name: &str, msg: Option<Message>) {
    let Some(msg) = msg else { return };
    crate::rfc4475_typed::check(name, &msg);
}
