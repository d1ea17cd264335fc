//! What each actor saw: a shared, ordered record of every message an actor received.
//!
//! Every actor records a message when it **receives** it (the receiver's view proves delivery),
//! so the order of records in one [`Trace`] is the causal order of the flow. The ladder printer,
//! the Mermaid writer, the `flow` step check and the integration tests all read the same records.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Notify;

/// Hasher of the trace's and actors' maps keyed by Call-IDs and labels: foldhash, seeded
/// from the OS per process (cheaper than SipHash on every message the servers record).
pub(crate) type FastState = foldhash::fast::RandomState;

/// One of the four actors of the flow (DESIGN.md §1), in ladder column order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Actor {
    /// The MCPTT client.
    Ue,
    /// Registrar and proxy of the user-service core.
    SipCore,
    /// The MCPTT application server.
    McpttServer,
    /// The identity management server.
    Idms,
}

impl Actor {
    /// All actors, in ladder column order.
    pub const ALL: [Self; 4] = [Self::Ue, Self::SipCore, Self::McpttServer, Self::Idms];

    /// Column index in the ladder (0 = leftmost).
    #[must_use]
    pub fn column(self) -> usize {
        match self {
            Self::Ue => 0,
            Self::SipCore => 1,
            Self::McpttServer => 2,
            Self::Idms => 3,
        }
    }

    /// Human-readable column title.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Ue => "UE",
            Self::SipCore => "SIP core",
            Self::McpttServer => "MCPTT server",
            Self::Idms => "IdMS",
        }
    }

    /// Short identifier used as a Mermaid participant id.
    #[must_use]
    pub fn id(self) -> &'static str {
        match self {
            Self::Ue => "UE",
            Self::SipCore => "SC",
            Self::McpttServer => "AS",
            Self::Idms => "IdMS",
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One message (or exchange, for steps 1 and 2) as the receiving actor saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Position in the trace (0-based, strictly increasing in recording order).
    pub seq: u64,
    /// Time since the trace started.
    pub at: Duration,
    /// The actor that recorded it (the receiver).
    pub observer: Actor,
    /// Sender.
    pub from: Actor,
    /// Receiver (usually equal to `observer`).
    pub to: Actor,
    /// Label of the UE (and user) the message concerns, e.g. `ue1/alice`.
    pub ue: String,
    /// Step of DESIGN.md §1 this message belongs to, if any.
    pub step: Option<u8>,
    /// SIP method for requests (or `TLS`/`HTTP` pseudo-methods); for responses, the CSeq method.
    pub method: String,
    /// Status code for responses, `None` for requests.
    pub status: Option<u16>,
    /// First line (request line or status line, or a one-line summary for non-SIP steps).
    pub first_line: String,
    /// Key headers (name, value), in message order.
    pub headers: Vec<(String, String)>,
    /// Body as text (lossy UTF-8), empty when none.
    pub body: String,
    /// The whole message as received (for `--verbose`).
    pub full: String,
}

impl Seen {
    /// First value of a recorded key header (case-insensitive name).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether this is a response.
    #[must_use]
    pub fn is_response(&self) -> bool {
        self.status.is_some()
    }
}

/// The fields an actor supplies when recording; [`Trace::record`] adds `seq` and `at`.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// Sender.
    pub from: Option<Actor>,
    /// UE/user label to use when the Call-ID is not bound (see [`Trace::bind`]).
    pub ue: String,
    /// Call-ID of the message, used to find its label.
    pub call_id: Option<String>,
    /// Method (request) or CSeq method (response).
    pub method: String,
    /// Status code for responses.
    pub status: Option<u16>,
    /// First line.
    pub first_line: String,
    /// Key headers.
    pub headers: Vec<(String, String)>,
    /// Body text.
    pub body: String,
    /// Whole message text.
    pub full: String,
    /// The message's wire bytes, from which a trace that keeps texts makes `body` and `full`
    /// (one that does not, as in load runs, then skips that work).
    pub wire: Option<WireText>,
}

/// A received message's wire bytes, turned into text ([`Seen::body`], [`Seen::full`]) only
/// by a trace that keeps texts.
#[derive(Debug, Clone, Default)]
pub struct WireText {
    /// The whole message.
    pub message: Bytes,
    /// Its body.
    pub body: Bytes,
    /// Longest body kept as text (a longer one is cut, with a note).
    pub max_body: usize,
}

impl WireText {
    /// The body text (lossy UTF-8, cut at `max_body`) and the whole message as text.
    #[must_use]
    pub fn texts(&self) -> (String, String) {
        let cut = self.body.len() > self.max_body;
        let mut body =
            String::from_utf8_lossy(self.body.get(..self.max_body).unwrap_or(&self.body))
                .into_owned();
        if cut {
            body.push_str("\n[… body cut]");
        }
        (body, String::from_utf8_lossy(&self.message).into_owned())
    }
}

/// A record of a trace [`without_text`](Trace::without_text) (load runs): what its [`Seen`]
/// holds, with the label shared with the Call-ID map, a standard method not copied and the
/// first line kept in the trace's one buffer of first lines (three allocations fewer per
/// record on the recording server threads). Read back as a [`Seen`].
#[derive(Debug, Clone)]
struct LeanSeen {
    seq: u64,
    at: Duration,
    observer: Actor,
    from: Actor,
    ue: Arc<str>,
    step: Option<u8>,
    method: Cow<'static, str>,
    status: Option<u16>,
    /// Where the first line is in [`Inner::lines`].
    first_line: Range<usize>,
    headers: Vec<(String, String)>,
}

impl LeanSeen {
    /// The record as a [`Seen`]; `lines` is [`Inner::lines`].
    fn to_seen(&self, lines: &str) -> Seen {
        Seen {
            seq: self.seq,
            at: self.at,
            observer: self.observer,
            from: self.from,
            to: self.observer,
            ue: self.ue.to_string(),
            step: self.step,
            method: self.method.to_string(),
            status: self.status,
            first_line: lines.get(self.first_line.clone()).unwrap_or("").to_owned(),
            headers: self.headers.clone(),
            body: String::new(),
            full: String::new(),
        }
    }
}

/// A record as stored.
enum Rec {
    Full(Seen),
    Lean(LeanSeen),
}

impl Rec {
    fn ue(&self) -> &str {
        match self {
            Self::Full(s) => &s.ue,
            Self::Lean(l) => &l.ue,
        }
    }
}

/// A standard SIP method as a static string (no copy), any other copied.
fn method_text(method: &str) -> Cow<'static, str> {
    const KNOWN: [&str; 14] = [
        "REGISTER",
        "INVITE",
        "ACK",
        "BYE",
        "CANCEL",
        "OPTIONS",
        "SUBSCRIBE",
        "NOTIFY",
        "PUBLISH",
        "MESSAGE",
        "INFO",
        "PRACK",
        "UPDATE",
        "REFER",
    ];
    KNOWN
        .iter()
        .find(|k| **k == method)
        .map_or_else(|| Cow::Owned(method.to_owned()), |k| Cow::Borrowed(*k))
}

#[derive(Debug)]
struct Inner {
    start: Instant,
    labels: HashMap<String, Arc<str>, FastState>,
    /// Records of a trace that keeps texts (and those stored before
    /// [`Trace::without_text`]), then the lean ones, in order.
    records: Vec<Seen>,
    lean: Vec<LeanSeen>,
    /// The first lines of the lean records, end to end (one buffer that grows, instead of
    /// one string per record); bounded like the records: a record not stored takes its
    /// line back out.
    lines: String,
    limit: usize,
    dropped: u64,
    echo: bool,
    keep_text: bool,
    /// Records per step (counted even past the limit).
    per_step: [usize; 19],
    /// Steps seen per label, as bit masks (bit N = step N), bounded like `labels`.
    masks: HashMap<String, u32, FastState>,
    /// Tasks in [`Trace::wait_label_step`], per label: a record wakes only the waiters of its
    /// own label (a load run has many UEs waiting at once; waking all of them on every record
    /// cost the recording server threads cross-thread wake-ups).
    label_waiters: HashMap<String, (Arc<Notify>, usize), FastState>,
    /// Tasks in the other waits ([`Trace::wait_step_count`], [`Trace::wait_until`]), which
    /// every record wakes; none: no wake-up at all.
    waiters: usize,
}

impl Inner {
    /// Records stored (full and lean).
    fn stored(&self) -> usize {
        self.records.len() + self.lean.len()
    }

    /// The next record's position in the trace.
    fn next_seq(&self) -> u64 {
        self.stored() as u64 + self.dropped
    }

    /// Appends a lean record's first line, written as `pieces` end to end, to
    /// [`lines`](Self::lines); where it is.
    fn push_line(&mut self, pieces: &[&str]) -> Range<usize> {
        let start = self.lines.len();
        for piece in pieces {
            self.lines.push_str(piece);
        }
        start..self.lines.len()
    }

    /// All stored records as [`Seen`]s, in order (borrowed when none is lean).
    fn all(&self) -> Cow<'_, [Seen]> {
        if self.lean.is_empty() {
            Cow::Borrowed(&self.records)
        } else {
            Cow::Owned(
                self.records
                    .iter()
                    .cloned()
                    .chain(self.lean.iter().map(|l| l.to_seen(&self.lines)))
                    .collect(),
            )
        }
    }

    /// The stored records whose observer and label pass `keep`, in order.
    fn filtered(&self, keep: impl Fn(Actor, &str) -> bool) -> Vec<Seen> {
        self.records
            .iter()
            .filter(|s| keep(s.observer, &s.ue))
            .cloned()
            .chain(
                self.lean
                    .iter()
                    .filter(|l| keep(l.observer, &l.ue))
                    .map(|l| l.to_seen(&self.lines)),
            )
            .collect()
    }
}

/// A shared, append-only record of what each actor saw. Cheap to clone (one `Arc`).
///
/// Memory is bounded: past `limit` records, further records are counted in
/// [`Trace::dropped`] but not stored (the `--ues N` load runs keep only the first ones).
#[derive(Debug, Clone)]
pub struct Trace {
    inner: Arc<Mutex<Inner>>,
    changed: Arc<Notify>,
}

impl Default for Trace {
    fn default() -> Self {
        Self::new()
    }
}

impl Trace {
    /// Default bound on stored records.
    pub const DEFAULT_LIMIT: usize = 100_000;

    /// A new empty trace whose clock starts now.
    #[must_use]
    pub fn new() -> Self {
        Self::with_limit(Self::DEFAULT_LIMIT)
    }

    /// A new empty trace storing at most `limit` records.
    #[must_use]
    pub fn with_limit(limit: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                start: Instant::now(),
                labels: HashMap::default(),
                records: Vec::new(),
                lean: Vec::new(),
                lines: String::new(),
                limit,
                dropped: 0,
                echo: false,
                keep_text: true,
                per_step: [0; 19],
                masks: HashMap::default(),
                label_waiters: HashMap::default(),
                waiters: 0,
            })),
            changed: Arc::new(Notify::new()),
        }
    }

    /// A trace that stores nothing and prints each record as a ladder line on stdout as it
    /// arrives (used by the separate binaries).
    #[must_use]
    pub fn echoing() -> Self {
        let t = Self::with_limit(0);
        t.lock().echo = true;
        t
    }

    /// Stops keeping key headers, bodies and whole-message texts (load runs keep first lines,
    /// and the service state of the NOTIFYs UEs receive).
    #[must_use]
    pub fn without_text(self) -> Self {
        self.lock().keep_text = false;
        self
    }

    /// Whether this trace keeps key headers, bodies and whole-message texts (false after
    /// [`without_text`](Self::without_text)): actors build the key headers of a record only
    /// when they are kept.
    #[must_use]
    pub fn keeps_text(&self) -> bool {
        self.lock().keep_text
    }

    /// How many records of step `n` were seen (including those past the storage limit).
    #[must_use]
    pub fn step_count(&self, n: u8) -> usize {
        self.lock()
            .per_step
            .get(usize::from(n))
            .copied()
            .unwrap_or(0)
    }

    /// Waits until records of step `n` labelled `label` were seen, or `timeout` passes.
    pub async fn wait_label_step(&self, label: &str, n: u8, timeout: Duration) -> bool {
        let limit = tokio::time::Instant::now() + timeout;
        let has = |inner: &Inner| inner.masks.get(label).is_some_and(|m| m & (1 << n) != 0);
        let notify = {
            let mut inner = self.lock();
            if has(&inner) {
                return true;
            }
            let entry = inner
                .label_waiters
                .entry(label.to_owned())
                .or_insert_with(|| (Arc::new(Notify::new()), 0));
            entry.1 += 1;
            entry.0.clone()
        };
        let _registered = LabelWait { trace: self, label };
        loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if has(&self.lock()) {
                return true;
            }
            if tokio::time::timeout_at(limit, notified).await.is_err() {
                return has(&self.lock());
            }
        }
    }

    /// Waits until at least `count` records of step `n` were seen, or `timeout` passes.
    pub async fn wait_step_count(&self, n: u8, count: usize, timeout: Duration) -> bool {
        let limit = tokio::time::Instant::now() + timeout;
        let _registered = Wait::new(self);
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.step_count(n) >= count {
                return true;
            }
            if tokio::time::timeout_at(limit, notified).await.is_err() {
                return self.step_count(n) >= count;
            }
        }
    }

    /// Waits until `done` holds for the stored records, or `timeout` passes; returns whether it
    /// holds. Wakes on every new record (no polling).
    pub async fn wait_until(&self, timeout: Duration, done: impl Fn(&[Seen]) -> bool) -> bool {
        let limit = tokio::time::Instant::now() + timeout;
        let _registered = Wait::new(self);
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if done(&self.lock().all()) {
                return true;
            }
            if tokio::time::timeout_at(limit, notified).await.is_err() {
                return done(&self.lock().all());
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves only fully-pushed records: keep using them.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records what `observer` received. The step is classified from sender, receiver and method.
    pub fn record(&self, observer: Actor, obs: Observation) {
        let from = obs.from.unwrap_or(observer);
        let step = crate::steps::classify(from, observer, &obs.method, obs.status.is_some());
        self.store(self.lock(), observer, from, step, obs);
    }

    /// Stores `obs`, already classified as `step`, with the lock held (released here).
    fn store(
        &self,
        mut inner: MutexGuard<'_, Inner>,
        observer: Actor,
        from: Actor,
        step: Option<u8>,
        obs: Observation,
    ) {
        let bound = obs
            .call_id
            .as_ref()
            .and_then(|c| inner.labels.get(c))
            .cloned();
        let seq = inner.next_seq();
        let at = inner.start.elapsed();
        let rec = if inner.keep_text {
            let ue = bound.map_or(obs.ue, |l| l.to_string());
            let (body, full) = match &obs.wire {
                Some(w) if obs.body.is_empty() && obs.full.is_empty() => w.texts(),
                _ => (obs.body, obs.full),
            };
            Rec::Full(Seen {
                seq,
                at,
                observer,
                from,
                to: observer,
                ue,
                step,
                method: obs.method,
                status: obs.status,
                first_line: obs.first_line,
                headers: obs.headers,
                body,
                full,
            })
        } else {
            Rec::Lean(LeanSeen {
                seq,
                at,
                observer,
                from,
                ue: bound.unwrap_or_else(|| Arc::from(obs.ue)),
                step,
                method: Cow::Owned(obs.method),
                status: obs.status,
                first_line: inner.push_line(&[&obs.first_line]),
                headers: obs.headers,
            })
        };
        self.keep(inner, step, rec);
    }

    /// Counts and keeps `rec` (or counts it as dropped past the limit), with the lock held
    /// (released here), and wakes its waiters.
    fn keep(&self, mut inner: MutexGuard<'_, Inner>, step: Option<u8>, rec: Rec) {
        if inner.echo {
            let line = match &rec {
                Rec::Full(seen) => {
                    crate::ladder::render(seen, crate::ladder::Detail::KeyHeaders, true)
                }
                Rec::Lean(lean) => crate::ladder::render(
                    &lean.to_seen(&inner.lines),
                    crate::ladder::Detail::KeyHeaders,
                    true,
                ),
            };
            println!("{line}");
        }
        if let Some(n) = step.and_then(|s| inner.per_step.get_mut(usize::from(s))) {
            *n += 1;
        }
        if let Some(s) = step {
            let room = inner.masks.len() < inner.limit.max(1024);
            match inner.masks.get_mut(rec.ue()) {
                Some(mask) => *mask |= 1 << s,
                None if room => {
                    inner.masks.insert(rec.ue().to_owned(), 1 << s);
                }
                None => {}
            }
        }
        let label_waiter = step
            .and_then(|_| inner.label_waiters.get(rec.ue()))
            .map(|(n, _)| n.clone());
        let wake_all = inner.waiters > 0;
        if inner.stored() >= inner.limit {
            inner.dropped += 1;
            if let Rec::Lean(lean) = &rec {
                // (Its line was the last one appended.)
                inner.lines.truncate(lean.first_line.start);
            }
        } else {
            match rec {
                Rec::Full(seen) => inner.records.push(seen),
                Rec::Lean(lean) => inner.lean.push(lean),
            }
        }
        drop(inner);
        if let Some(n) = label_waiter {
            n.notify_waiters();
        }
        if wake_all {
            self.changed.notify_waiters();
        }
    }

    /// Records the message `observer` received from `from`, building only what this trace
    /// keeps: a trace [`without_text`](Self::without_text) (load runs) skips the key headers,
    /// the body summaries (except the service state of the NOTIFYs UEs receive) and the wire
    /// texts. `label` names the UE when the Call-ID is not bound; it is called only then, with
    /// the trace locked (it must not use the trace).
    pub fn observe(
        &self,
        observer: Actor,
        msg: &mcptt_sip::Message,
        from: Actor,
        label: impl FnOnce() -> String,
    ) {
        let call_id = msg
            .headers()
            .get_known(mcptt_sip::KnownHeader::CallId)
            .map(str::trim);
        let mut inner = self.lock();
        let bound = call_id.and_then(|c| inner.labels.get(c).cloned());
        if inner.keep_text {
            drop(inner);
            // The full record resolves the label when it is stored, as before.
            let name = bound.map_or_else(label, |b| b.to_string());
            let obs = crate::actors::wire::observe(msg, from, &name);
            self.record(observer, obs);
            return;
        }
        // A lean record is classified once and stored under the same lock that found its
        // label (the servers record every message they receive: one lock, not two).
        let method = crate::actors::wire::method_str(msg);
        let step = crate::steps::classify(
            from,
            observer,
            method,
            matches!(msg, mcptt_sip::Message::Response(_)),
        );
        // What load runs read: first line, method, status and, for a NOTIFY the UE receives
        // (step 16: the service state the run's final-state check reads), the body summary.
        let status = match msg {
            mcptt_sip::Message::Response(r) => Some(r.status()),
            mcptt_sip::Message::Request(_) => None,
        };
        let mut headers = Vec::new();
        if status.is_none()
            && step == Some(16)
            && let Some(summary) = crate::actors::wire::body_summary(msg)
        {
            headers.push(("Body".to_owned(), summary));
        }
        let rec = LeanSeen {
            seq: inner.next_seq(),
            at: inner.start.elapsed(),
            observer,
            from,
            ue: bound.unwrap_or_else(|| Arc::from(label())),
            step,
            method: method_text(method),
            status,
            first_line: inner.push_line(&[crate::actors::wire::first_line_str(msg)]),
            headers,
        };
        self.keep(inner, step, Rec::Lean(rec));
    }

    /// Records what `observer` received from `from` that is not a SIP message (the SIP core
    /// records each UE's TLS handshake): as [`record`](Self::record) of an observation with
    /// this label, method and first line (`first_line`'s pieces end to end) and nothing
    /// else, but a trace [`without_text`](Self::without_text) builds no observation: the
    /// pieces go straight into its buffer of first lines, and the method is not copied.
    pub fn record_event(
        &self,
        observer: Actor,
        from: Actor,
        label: &str,
        method: &'static str,
        first_line: &[&str],
    ) {
        let mut inner = self.lock();
        if inner.keep_text {
            drop(inner);
            self.record(
                observer,
                Observation {
                    from: Some(from),
                    ue: label.to_owned(),
                    method: method.to_owned(),
                    first_line: first_line.concat(),
                    ..Observation::default()
                },
            );
            return;
        }
        let step = crate::steps::classify(from, observer, method, false);
        let first_line = inner.push_line(first_line);
        let rec = LeanSeen {
            seq: inner.next_seq(),
            at: inner.start.elapsed(),
            observer,
            from,
            ue: Arc::from(label),
            step,
            method: Cow::Borrowed(method),
            status: None,
            first_line,
            headers: Vec::new(),
        };
        self.keep(inner, step, Rec::Lean(rec));
    }

    /// Labels every later record of messages with this Call-ID (the UE binds the Call-IDs it
    /// creates to its sign-in label before sending, so all actors' records group by sign-in).
    pub fn bind(&self, call_id: &str, label: &str) {
        let mut inner = self.lock();
        if inner.labels.len() < inner.limit {
            inner.labels.insert(call_id.to_owned(), Arc::from(label));
        }
    }

    /// Gives `call_id` the label already bound to `existing` (e.g. the SIP core's third-party
    /// REGISTER takes the label of the UE's REGISTER). No effect if `existing` is unbound.
    pub fn alias(&self, call_id: &str, existing: &str) {
        let mut inner = self.lock();
        if let Some(label) = inner.labels.get(existing).cloned()
            && inner.labels.len() < inner.limit
        {
            inner.labels.insert(call_id.to_owned(), label);
        }
    }

    /// The label bound to a Call-ID.
    #[must_use]
    pub fn label_of(&self, call_id: &str) -> Option<String> {
        self.lock().labels.get(call_id).map(|l| l.to_string())
    }

    /// A copy of all stored records, in order.
    #[must_use]
    pub fn snapshot(&self) -> Vec<Seen> {
        self.lock().all().into_owned()
    }

    /// Records seen by one actor, in order.
    #[must_use]
    pub fn seen_by(&self, actor: Actor) -> Vec<Seen> {
        self.lock().filtered(|observer, _| observer == actor)
    }

    /// Records whose label is one of `labels`, in order.
    #[must_use]
    pub fn for_labels(&self, labels: &[&str]) -> Vec<Seen> {
        self.lock().filtered(|_, ue| labels.contains(&ue))
    }

    /// The stored records grouped by label, each group in order (one pass over the trace:
    /// what a load run's per-UE checks read instead of one [`Trace::for_labels`] scan per UE).
    #[must_use]
    pub fn by_label(&self) -> HashMap<String, Vec<Seen>> {
        let mut groups: HashMap<String, Vec<Seen>> = HashMap::new();
        for s in self.lock().all().into_owned() {
            groups.entry(s.ue.clone()).or_default().push(s);
        }
        groups
    }

    /// Number of records not stored because the limit was reached.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }
}

/// Counts a task in [`Trace::wait_step_count`] or [`Trace::wait_until`] while it waits.
struct Wait<'a>(&'a Trace);

impl<'a> Wait<'a> {
    fn new(trace: &'a Trace) -> Self {
        trace.lock().waiters += 1;
        Self(trace)
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        let mut inner = self.0.lock();
        inner.waiters = inner.waiters.saturating_sub(1);
    }
}

/// Unregisters a task in [`Trace::wait_label_step`] when it stops waiting (also when its
/// future is dropped).
struct LabelWait<'a> {
    trace: &'a Trace,
    label: &'a str,
}

impl Drop for LabelWait<'_> {
    fn drop(&mut self) {
        let mut inner = self.trace.lock();
        if let Some(entry) = inner.label_waiters.get_mut(self.label) {
            entry.1 = entry.1.saturating_sub(1);
            if entry.1 == 0 {
                inner.label_waiters.remove(self.label);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::steps::TLS;

    #[test]
    fn records_are_ordered_and_bounded() {
        let t = Trace::with_limit(2);
        t.bind("c1", "ue1/alice");
        t.alias("c2", "c1");
        for (m, c) in [("REGISTER", "c1"), ("PUBLISH", "c2"), ("SUBSCRIBE", "c3")] {
            t.record(
                Actor::SipCore,
                Observation {
                    from: Some(Actor::Ue),
                    ue: "ue1".into(),
                    call_id: Some(c.into()),
                    method: m.into(),
                    ..Observation::default()
                },
            );
        }
        let s = t.snapshot();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].seq, 0);
        assert_eq!(s[1].seq, 1);
        assert_eq!(s[0].step, Some(3));
        assert_eq!(s[1].step, Some(7));
        assert_eq!(t.dropped(), 1);
        assert_eq!(s[0].ue, "ue1/alice");
        assert_eq!(s[1].ue, "ue1/alice");
        assert_eq!(t.for_labels(&["ue1/alice"]).len(), 2);
        assert_eq!(t.seen_by(Actor::SipCore).len(), 2);
        assert!(t.seen_by(Actor::Ue).is_empty());
    }

    fn poll_once<F: Future>(f: std::pin::Pin<&mut F>) -> std::task::Poll<F::Output> {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        f.poll(&mut cx)
    }

    fn step3(label: &str) -> Observation {
        Observation {
            from: Some(Actor::Ue),
            ue: label.into(),
            method: "REGISTER".into(),
            ..Observation::default()
        }
    }

    #[tokio::test]
    async fn a_record_wakes_only_the_waiters_of_its_label() {
        let t = Trace::new();
        let waiter = t.wait_label_step("ue1/alice", 3, Duration::from_secs(3600));
        tokio::pin!(waiter);
        assert!(poll_once(waiter.as_mut()).is_pending());
        assert!(t.lock().label_waiters.contains_key("ue1/alice"));
        assert_eq!(t.lock().waiters, 0, "no task waits for every record");
        t.record(Actor::SipCore, step3("ue2/bob"));
        assert!(poll_once(waiter.as_mut()).is_pending());
        t.record(Actor::SipCore, step3("ue1/alice"));
        assert_eq!(poll_once(waiter.as_mut()), std::task::Poll::Ready(true));
        assert!(t.lock().label_waiters.is_empty());
        // A waiter dropped before its step is unregistered too.
        {
            let gone = t.wait_label_step("ue3/carol", 3, Duration::from_secs(3600));
            tokio::pin!(gone);
            assert!(poll_once(gone.as_mut()).is_pending());
            assert_eq!(t.lock().label_waiters.len(), 1);
        }
        assert!(t.lock().label_waiters.is_empty());
        // Already seen: no registration at all.
        assert!(
            t.wait_label_step("ue2/bob", 3, Duration::from_secs(3600))
                .await
        );
        assert!(t.lock().label_waiters.is_empty());
    }

    #[tokio::test]
    async fn wait_until_is_woken_by_any_record() {
        let t = Trace::new();
        let waiter = t.wait_until(Duration::from_secs(3600), |r| r.len() == 2);
        tokio::pin!(waiter);
        assert!(poll_once(waiter.as_mut()).is_pending());
        assert_eq!(t.lock().waiters, 1);
        t.record(Actor::SipCore, step3("a"));
        assert!(poll_once(waiter.as_mut()).is_pending());
        t.record(Actor::SipCore, step3("b"));
        assert_eq!(poll_once(waiter.as_mut()), std::task::Poll::Ready(true));
        assert_eq!(t.lock().waiters, 0);
    }

    #[test]
    fn only_a_trace_without_text_says_it_drops_key_headers() {
        let t = Trace::new();
        assert!(t.keeps_text());
        let lean = t.clone().without_text();
        assert!(!lean.keeps_text());
        // One trace behind both handles.
        assert!(!t.keeps_text());
    }

    #[test]
    fn lean_records_read_back_in_order_with_the_kept_ones() {
        // Records kept before `without_text` stay full; later ones are lean. Every reader
        // gives them back as `Seen`s, in recording order.
        let obs = |ue: &str, method: &str| Observation {
            from: Some(Actor::Ue),
            ue: ue.to_owned(),
            method: method.to_owned(),
            first_line: format!("{method} sip:x SIP/2.0"),
            headers: vec![("Peer".to_owned(), "1.2.3.4".to_owned())],
            ..Observation::default()
        };
        let t = Trace::new();
        t.record(Actor::SipCore, obs("ue1/alice", "REGISTER"));
        let t = t.without_text();
        t.bind("c2", "ue2/bob");
        t.record(Actor::SipCore, obs("ue2/bob", "X-CUSTOM"));
        let msg = mcptt_sip::Message::parse(Bytes::from_static(
            b"PUBLISH sip:p@example.com SIP/2.0\r\nVia: SIP/2.0/TLS ue;branch=z9hG4bK1\r\n\
              To: <sip:p@example.com>\r\nFrom: <sip:p@example.com>;tag=1\r\n\
              Call-ID: c2\r\nCSeq: 1 PUBLISH\r\nContent-Length: 0\r\n\r\n",
        ))
        .unwrap();
        t.observe(Actor::McpttServer, &msg, Actor::SipCore, || {
            "unused".to_owned()
        });
        let all = t.snapshot();
        assert_eq!(all.iter().map(|s| s.seq).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(
            all.iter().map(|s| s.method.as_str()).collect::<Vec<_>>(),
            ["REGISTER", "X-CUSTOM", "PUBLISH"]
        );
        assert_eq!(all[2].ue, "ue2/bob");
        assert_eq!(all[2].first_line, "PUBLISH sip:p@example.com SIP/2.0");
        // A lean record keeps the key headers it was given by `record`.
        assert_eq!(all[1].header("Peer"), Some("1.2.3.4"));
        assert_eq!(t.seen_by(Actor::McpttServer), all[2..]);
        assert_eq!(t.for_labels(&["ue2/bob"]), all[1..]);
        let groups = t.by_label();
        assert_eq!(groups["ue1/alice"], all[..1]);
        assert_eq!(groups["ue2/bob"], all[1..]);
        assert_eq!(method_text("NOTIFY"), Cow::Borrowed("NOTIFY"));
        assert!(matches!(method_text("X-CUSTOM"), Cow::Owned(m) if m == "X-CUSTOM"));
    }

    #[test]
    fn a_lean_observation_reads_as_the_kept_one_does() {
        // The same messages observed by a trace that keeps texts and by a load run's: the
        // lean path (one lock, classified once) must give the same step, method, status,
        // first line, label and, for the NOTIFY the UE receives (step 16), the same body
        // summary; an unbound Call-ID takes the label from the closure.
        let ct = mcptt_service_state::body::SERVICE_STATE_CONTENT_TYPE;
        let notify = format!(
            "NOTIFY sip:ue1@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TLS sc;branch=z9hG4bK1\r\n\
             To: <sip:alice@example.com>;tag=a\r\nFrom: <sip:alice@example.com>;tag=b\r\n\
             Call-ID: c1\r\nCSeq: 2 NOTIFY\r\nContent-Type: {ct}\r\n\
             Content-Length: 5\r\n\r\nnope!"
        );
        let ok = "SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS ue;branch=z9hG4bK2\r\n\
             To: <sip:alice@example.com>;tag=a\r\nFrom: <sip:alice@example.com>;tag=b\r\n\
             Call-ID: c1\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n";
        let register = "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/TLS ue;branch=z9hG4bK3\r\n\
             To: <sip:bob@example.com>\r\nFrom: <sip:bob@example.com>;tag=c\r\n\
             Call-ID: unbound\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n";
        let seen = |t: &Trace| {
            t.bind("c1", "ue1/alice");
            for (text, observer, from) in [
                (notify.as_str(), Actor::Ue, Actor::SipCore),
                (ok, Actor::Ue, Actor::SipCore),
                (register, Actor::SipCore, Actor::Ue),
            ] {
                let msg = mcptt_sip::Message::parse(Bytes::from(text.to_owned())).unwrap();
                t.observe(observer, &msg, from, || "ue2/bob".to_owned());
            }
            t.snapshot()
        };
        let kept = seen(&Trace::new());
        let lean = seen(&Trace::new().without_text());
        assert_eq!(lean.len(), 3);
        for (k, l) in kept.iter().zip(&lean) {
            assert_eq!(
                (
                    k.step,
                    &k.method,
                    k.status,
                    &k.first_line,
                    &k.ue,
                    k.from,
                    k.observer
                ),
                (
                    l.step,
                    &l.method,
                    l.status,
                    &l.first_line,
                    &l.ue,
                    l.from,
                    l.observer
                )
            );
        }
        assert_eq!(
            lean.iter().map(|s| s.step).collect::<Vec<_>>(),
            [Some(16), Some(4), Some(3)]
        );
        assert_eq!(lean[2].ue, "ue2/bob");
        let body = lean[0].header("Body").unwrap();
        assert!(body.starts_with("unparsable service state"), "{body}");
        assert_eq!(kept[0].header("Body"), Some(body));
        assert!(lean[1].headers.is_empty() && lean[2].headers.is_empty());
    }

    #[test]
    fn lean_first_lines_share_one_buffer_bounded_by_the_limit() {
        // A load run's records keep their first lines in one buffer; a record past the
        // limit is counted, and its line does not stay in the buffer.
        let t = Trace::with_limit(2).without_text();
        let lines = [
            "REGISTER sip:example.com SIP/2.0",
            "SIP/2.0 200 OK",
            "PUBLISH sip:p@example.com SIP/2.0",
        ];
        for line in lines {
            let text = if line.starts_with("SIP/") {
                format!(
                    "{line}\r\nVia: SIP/2.0/TLS ue;branch=z9hG4bK1\r\nTo: <sip:p@example.com>;tag=2\r\n\
                     From: <sip:p@example.com>;tag=1\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\n\
                     Content-Length: 0\r\n\r\n"
                )
            } else {
                let method = line.split(' ').next().unwrap();
                format!(
                    "{line}\r\nVia: SIP/2.0/TLS ue;branch=z9hG4bK1\r\nTo: <sip:p@example.com>\r\n\
                     From: <sip:p@example.com>;tag=1\r\nCall-ID: c\r\nCSeq: 1 {method}\r\n\
                     Content-Length: 0\r\n\r\n"
                )
            };
            let msg = mcptt_sip::Message::parse(Bytes::from(text)).unwrap();
            t.observe(Actor::SipCore, &msg, Actor::Ue, || "ue1".to_owned());
        }
        let all = t.snapshot();
        assert_eq!(
            all.iter()
                .map(|s| s.first_line.as_str())
                .collect::<Vec<_>>(),
            lines[..2]
        );
        assert_eq!(t.dropped(), 1);
        assert_eq!(t.lock().lines, lines[..2].concat());
        // A record stored through `record` keeps its line in the same buffer.
        let t = Trace::new().without_text();
        let obs = || Observation {
            first_line: "REGISTER sip:x SIP/2.0".into(),
            ..step3("ue1")
        };
        t.record(Actor::SipCore, obs());
        t.observe(
            Actor::SipCore,
            &mcptt_sip::Message::parse(Bytes::from_static(
                b"SIP/2.0 403 Forbidden\r\nVia: SIP/2.0/TLS ue;branch=z9hG4bK1\r\n\
                  To: <sip:p@example.com>;tag=2\r\nFrom: <sip:p@example.com>;tag=1\r\n\
                  Call-ID: c\r\nCSeq: 1 PUBLISH\r\nContent-Length: 0\r\n\r\n",
            ))
            .unwrap(),
            Actor::McpttServer,
            || "ue1".to_owned(),
        );
        let all = t.snapshot();
        assert_eq!(all[0].first_line, obs().first_line);
        assert_eq!(all[1].first_line, "SIP/2.0 403 Forbidden");
    }

    #[test]
    fn an_event_reads_as_the_observation_it_stands_for() {
        // `record_event` gives what `record` of the same observation gives, in a trace that
        // keeps texts and in a load run's (which stores the pieces of the line directly),
        // where a record past the limit takes its line back out.
        for limit in [10, 1] {
            for lean in [false, true] {
                let (by_event, by_record) = (Trace::with_limit(limit), Trace::with_limit(limit));
                let (by_event, by_record) = if lean {
                    (by_event.without_text(), by_record.without_text())
                } else {
                    (by_event, by_record)
                };
                for n in 0..2 {
                    let peer = format!("sip:ue{n}@example.com");
                    let pieces = [
                        "TLSv1_3",
                        " handshake, client certificate verified: ",
                        &peer,
                    ];
                    by_event.record_event(Actor::SipCore, Actor::Ue, "ue1", TLS, &pieces);
                    by_record.record(
                        Actor::SipCore,
                        Observation {
                            from: Some(Actor::Ue),
                            ue: "ue1".to_owned(),
                            method: TLS.to_owned(),
                            first_line: pieces.concat(),
                            ..Observation::default()
                        },
                    );
                }
                let strip = |t: &Trace| {
                    t.snapshot()
                        .into_iter()
                        .map(|s| Seen {
                            at: Duration::ZERO,
                            ..s
                        })
                        .collect::<Vec<_>>()
                };
                let got = strip(&by_event);
                assert_eq!(got, strip(&by_record), "lean {lean}, limit {limit}");
                assert_eq!(got.len(), limit.min(2));
                assert_eq!(got[0].step, Some(2));
                assert_eq!(
                    got[0].first_line,
                    "TLSv1_3 handshake, client certificate verified: sip:ue0@example.com"
                );
                assert_eq!(by_event.dropped(), by_record.dropped());
                assert_eq!(by_event.lock().lines, by_record.lock().lines);
            }
        }
    }

    #[test]
    fn wire_texts_are_made_only_when_kept() {
        let wire = WireText {
            message: Bytes::from_static(b"MESSAGE sip:a SIP/2.0\r\n\r\nhello world"),
            body: Bytes::from_static(b"hello world"),
            max_body: 5,
        };
        let obs = || Observation {
            wire: Some(wire.clone()),
            ..step3("ue1")
        };
        let kept = Trace::new();
        kept.record(Actor::SipCore, obs());
        let s = &kept.snapshot()[0];
        assert_eq!(s.body, "hello\n[… body cut]");
        assert!(s.full.starts_with("MESSAGE sip:a") && s.full.ends_with("hello world"));
        let load = Trace::new().without_text();
        load.record(Actor::SipCore, obs());
        let s = &load.snapshot()[0];
        assert!(s.body.is_empty() && s.full.is_empty());
        assert_eq!(s.step, Some(3));
    }
}
