#![cfg(target_arch = "wasm32")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! wasm-bindgen tests of the binding layer (`captoken::bindings`): every
//! exported class and method, every error path, and that a failed call leaves
//! the store unchanged and working.
//!
//! Runs under node and in a browser alike (no `run_in_browser` here):
//!
//! ```text
//! wasm-pack test --node -- --test wasm
//! WASM_BINDGEN_USE_BROWSER=1 wasm-pack test --headless --chrome \
//!     --chromedriver /usr/bin/chromedriver -- --test wasm
//! ```
//!
//! Most tests call the Rust side of the bindings directly with `JsValue`
//! arguments; the `glue_*` tests go through the generated JavaScript classes
//! (`TokenStore`, `CapTokenRecord`), as a JavaScript caller would.

use captoken::bindings::{register_error_class, JsCapTokenRecord, JsTokenStore};
use js_sys::{Array, Function, Object, Reflect, Uint8Array, JSON};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::*;

// ---- helpers -------------------------------------------------------------

/// The protocol's example time.
const T0: u64 = 1_764_150_000;
/// The default token lifetime.
const TTL: u64 = 1800;
/// `Number.MAX_SAFE_INTEGER`.
const MAX_SAFE: f64 = 9_007_199_254_740_991.0;

const ALL_CODES: [&str; 12] = [
    "ERR_MALFORMED_TOKEN",
    "ERR_BAD_SIGNATURE",
    "ERR_TOKEN_EXPIRED",
    "ERR_ROLE_VIOLATION",
    "ERR_TOKEN_NOT_FOUND",
    "ERR_TOKEN_TASK_MISMATCH",
    "ERR_TOKEN_REVOKED",
    "ERR_TOKEN_USES_EXHAUSTED",
    "ERR_SPAWN_DEPTH_EXCEEDED",
    "ERR_TASK_NOT_FOUND",
    "ERR_INVALID_ARGUMENT",
    "ERR_SNAPSHOT_INVALID",
];

fn js(text: &str) -> JsValue {
    JsValue::from_str(text)
}

fn num(n: f64) -> JsValue {
    JsValue::from_f64(n)
}

fn undef() -> JsValue {
    JsValue::UNDEFINED
}

fn eval(code: &str) -> JsValue {
    js_sys::eval(code).unwrap_or_else(|e| panic!("eval({code}) threw {e:?}"))
}

fn object(pairs: &[(&str, JsValue)]) -> JsValue {
    let target = Object::new();
    for (key, value) in pairs {
        Reflect::set(&target, &js(key), value).unwrap();
    }
    target.into()
}

fn array(items: &[JsValue]) -> JsValue {
    items.iter().collect::<Array>().into()
}

fn strings(items: &[&str]) -> JsValue {
    items.iter().map(|s| js(s)).collect::<Array>().into()
}

fn bytes(len: usize, byte: u8) -> JsValue {
    Uint8Array::from(vec![byte; len].as_slice()).into()
}

/// The test secret: 32 bytes of 7.
fn secret() -> JsValue {
    bytes(32, 7)
}

/// A `now` callback that always answers `t`.
fn fixed_now(t: u64) -> JsValue {
    Function::new_no_args(&format!("return {t};")).into()
}

/// A `now` callback reading `globalThis[name]`, set to `t` now; move it with
/// [`set_time`].
fn moving_now(name: &str, t: u64) -> JsValue {
    set_time(name, t);
    Function::new_no_args(&format!("return globalThis.{name};")).into()
}

fn set_time(name: &str, t: u64) {
    Reflect::set(&js_sys::global(), &js(name), &num(t as f64)).unwrap();
}

/// `{ secret, now: () => T0 }` with `extra` set on top (overriding).
fn options_with(extra: &[(&str, JsValue)]) -> JsValue {
    let options = object(&[("secret", secret()), ("now", fixed_now(T0))]);
    for (key, value) in extra {
        Reflect::set(&options, &js(key), value).unwrap();
    }
    options
}

fn new_store(options: JsValue) -> JsTokenStore {
    ok(JsTokenStore::new(options))
}

fn store() -> JsTokenStore {
    new_store(options_with(&[]))
}

fn get(target: &JsValue, key: &str) -> JsValue {
    Reflect::get(target, &js(key)).unwrap()
}

fn get_str(target: &JsValue, key: &str) -> String {
    get(target, key)
        .as_string()
        .unwrap_or_else(|| panic!("{key} is not a string in {}", describe(target)))
}

fn get_f64(target: &JsValue, key: &str) -> f64 {
    get(target, key)
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number in {}", describe(target)))
}

fn get_bool(target: &JsValue, key: &str) -> bool {
    get(target, key)
        .as_bool()
        .unwrap_or_else(|| panic!("{key} is not a boolean in {}", describe(target)))
}

fn has(target: &JsValue, key: &str) -> bool {
    Reflect::has(target, &js(key)).unwrap()
}

fn json(value: &JsValue) -> String {
    JSON::stringify(value).unwrap().into()
}

fn describe(value: &JsValue) -> String {
    if value.is_instance_of::<js_sys::Error>() {
        let code = Reflect::get(value, &js("code")).unwrap_or(JsValue::UNDEFINED);
        let message = Reflect::get(value, &js("message")).unwrap_or(JsValue::UNDEFINED);
        return format!("{code:?}: {message:?}");
    }
    match JSON::stringify(value) {
        Ok(text) => String::from(text),
        Err(_) => format!("{value:?}"),
    }
}

fn ok<T>(result: Result<T, JsValue>) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("unexpected error {}", describe(&error)),
    }
}

/// Asserts `result` is a thrown `CapTokenError` with `code`; returns it.
#[track_caller]
fn fails<T>(result: Result<T, JsValue>, code: &str) -> JsValue {
    let error = match result {
        Ok(_) => panic!("expected {code}, but the call succeeded"),
        Err(error) => error,
    };
    assert_cap_error(&error, code);
    error
}

#[track_caller]
fn assert_cap_error(error: &JsValue, code: &str) {
    assert!(
        error.is_instance_of::<js_sys::Error>(),
        "thrown value is not an Error: {error:?}"
    );
    assert_eq!(
        get_str(error, "name"),
        "CapTokenError",
        "{}",
        describe(error)
    );
    assert_eq!(get_str(error, "code"), code, "{}", describe(error));
    assert!(!get_str(error, "message").is_empty());
}

/// The whole observable state: records (sorted by fingerprint) and tasks.
fn state(store: &JsTokenStore) -> String {
    format!(
        "{} {} {}",
        json(&store.records()),
        json(&store.tasks()),
        store.size()
    )
}

fn bearer(minted: &JsValue) -> JsValue {
    get(minted, "bearer")
}

fn fp(minted: &JsValue) -> String {
    get_str(minted, "fingerprint")
}

fn nonce(minted: &JsValue) -> String {
    get_str(&get(minted, "token"), "nonce")
}

fn uses_left(store: &JsTokenStore, fingerprint: &str) -> Option<u32> {
    uses(&ok(store.record(js(fingerprint))).expect("record exists"))
}

/// A record's `usesLeft`: a whole number, or `null` (never `undefined`) for unlimited.
fn uses(record: &JsCapTokenRecord) -> Option<u32> {
    let left = record.uses_left();
    if left.is_null() {
        return None;
    }
    let n = left
        .as_f64()
        .unwrap_or_else(|| panic!("usesLeft is {left:?}, not a number or null"));
    assert!(n >= 0.0 && n.fract() == 0.0 && n <= f64::from(u32::MAX));
    Some(n as u32)
}

fn is_lower_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn operator(store: &mut JsTokenStore) -> JsValue {
    ok(store.attach_operator(js("op-1"), undef()))
}

/// A root task started by `op` with the given id.
fn root(store: &mut JsTokenStore, op: &JsValue, id: &str) -> JsValue {
    ok(store.start_task(bearer(op), object(&[("taskId", js(id))])))
}

/// A fingerprint the store does not hold.
const UNKNOWN_FP: &str = "5947d7c33d783f94b3b4c1a96ebc8991ed28f1b069b71e03376cba8caa98a720";

/// Values of every JavaScript type, for "garbage never traps".
fn garbage() -> Vec<JsValue> {
    vec![
        undef(),
        JsValue::NULL,
        JsValue::TRUE,
        JsValue::FALSE,
        num(0.0),
        num(-1.5),
        num(f64::NAN),
        num(f64::INFINITY),
        js(""),
        js("garbage"),
        js("!!!not base64!!!"),
        js(&"A".repeat(200_000)),
        js("\u{0}\u{ffff}\u{1F600}"),
        Object::new().into(),
        Array::new().into(),
        strings(&["fetch_prompt"]),
        Function::new_no_args("return 1").into(),
        eval("Symbol('x')"),
        eval("10n"),
        eval("new String('fetch_prompt')"),
        bytes(32, 1),
        js_sys::Error::new("x").into(),
        eval("new Proxy({}, { get() { throw new Error('trap'); } })"),
        eval("(() => { const p = Proxy.revocable({}, {}); p.revoke(); return p.proxy; })()"),
    ]
}

// ---- TokenStore constructor ---------------------------------------------

#[wasm_bindgen_test]
fn constructor_accepts_good_options() {
    let mut store = store();
    assert_eq!(store.size(), 0);
    assert!(Array::is_array(&store.records()));
    assert_eq!(Array::from(&store.records()).length(), 0);
    assert!(Array::is_array(&store.tasks()));
    assert_eq!(Array::from(&store.tasks()).length(), 0);
    let op = operator(&mut store);
    let token = get(&op, "token");
    assert_eq!(get_f64(&token, "v"), 2.0, "v2 is the default format");
    assert_eq!(get_f64(&token, "issued_at"), T0 as f64);
    assert_eq!(get_f64(&token, "expire_at"), (T0 + TTL) as f64);

    // Every option set, mlua-swarm format.
    let mut store = new_store(options_with(&[
        ("format", js("mlua-swarm")),
        ("maxSpawnDepth", num(2.0)),
        ("workerTokenTtlSecs", num(60.0)),
        ("gate", object(&[])),
    ]));
    let op = operator(&mut store);
    let token = get(&op, "token");
    assert!(!has(&token, "v"), "mlua-swarm tokens carry no v");
    assert_eq!(get_f64(&token, "expire_at"), (T0 + 60) as f64);
    let snapshot = JSON::parse(&store.snapshot().unwrap()).unwrap();
    assert_eq!(get_str(&snapshot, "format"), "mlua-swarm");

    // Explicit v2, a long secret, -0 and the largest values.
    let mut store = new_store(options_with(&[
        ("format", js("v2")),
        ("secret", bytes(4096, 3)),
        ("maxSpawnDepth", num(f64::from(u32::MAX))),
        ("workerTokenTtlSecs", num(1.0)),
    ]));
    operator(&mut store);
    assert_eq!(store.size(), 1);

    // Without `now` the store reads Date.now().
    let mut store = new_store(object(&[("secret", secret())]));
    let before = (js_sys::Date::now() / 1000.0).floor();
    let op = operator(&mut store);
    let after = (js_sys::Date::now() / 1000.0).ceil();
    let issued = get_f64(&get(&op, "token"), "issued_at");
    assert!(
        issued >= before && issued <= after,
        "{before} <= {issued} <= {after}"
    );
}

#[wasm_bindgen_test]
fn constructor_rejects_bad_options() {
    let bad: Vec<(&str, JsValue)> = vec![
        ("options undefined", undef()),
        ("options null", JsValue::NULL),
        ("options number", num(5.0)),
        ("options string", js("secret")),
        ("options array", array(&[secret()])),
        ("options function", Function::new_no_args("return 1").into()),
        ("secret missing", object(&[("now", fixed_now(T0))])),
        ("secret null", options_with(&[("secret", JsValue::NULL)])),
        (
            "secret string",
            options_with(&[("secret", js(&"x".repeat(64)))]),
        ),
        (
            "secret array",
            options_with(&[("secret", array(&vec![num(1.0); 32]))]),
        ),
        (
            "secret Int8Array",
            options_with(&[("secret", eval("new Int8Array(32)"))]),
        ),
        (
            "secret ArrayBuffer",
            options_with(&[("secret", eval("new ArrayBuffer(32)"))]),
        ),
        ("secret 31 bytes", options_with(&[("secret", bytes(31, 7))])),
        ("secret empty", options_with(&[("secret", bytes(0, 7))])),
        (
            "secret 4097 bytes",
            options_with(&[("secret", bytes(4097, 7))]),
        ),
        ("format v3", options_with(&[("format", js("v3"))])),
        ("format V2", options_with(&[("format", js("V2"))])),
        ("format number", options_with(&[("format", num(2.0))])),
        ("format null", options_with(&[("format", JsValue::NULL)])),
        (
            "maxSpawnDepth 0",
            options_with(&[("maxSpawnDepth", num(0.0))]),
        ),
        (
            "maxSpawnDepth -1",
            options_with(&[("maxSpawnDepth", num(-1.0))]),
        ),
        (
            "maxSpawnDepth NaN",
            options_with(&[("maxSpawnDepth", num(f64::NAN))]),
        ),
        (
            "maxSpawnDepth 1.5",
            options_with(&[("maxSpawnDepth", num(1.5))]),
        ),
        (
            "maxSpawnDepth string",
            options_with(&[("maxSpawnDepth", js("4"))]),
        ),
        (
            "maxSpawnDepth Infinity",
            options_with(&[("maxSpawnDepth", num(f64::INFINITY))]),
        ),
        (
            "maxSpawnDepth 2^32",
            options_with(&[("maxSpawnDepth", num(4_294_967_296.0))]),
        ),
        (
            "maxSpawnDepth null",
            options_with(&[("maxSpawnDepth", JsValue::NULL)]),
        ),
        (
            "maxSpawnDepth bigint",
            options_with(&[("maxSpawnDepth", eval("4n"))]),
        ),
        (
            "workerTokenTtlSecs 0",
            options_with(&[("workerTokenTtlSecs", num(0.0))]),
        ),
        (
            "workerTokenTtlSecs -5",
            options_with(&[("workerTokenTtlSecs", num(-5.0))]),
        ),
        (
            "workerTokenTtlSecs 1.5",
            options_with(&[("workerTokenTtlSecs", num(1.5))]),
        ),
        (
            "workerTokenTtlSecs NaN",
            options_with(&[("workerTokenTtlSecs", num(f64::NAN))]),
        ),
        (
            "workerTokenTtlSecs string",
            options_with(&[("workerTokenTtlSecs", js("60"))]),
        ),
        (
            "workerTokenTtlSecs 2^53",
            options_with(&[("workerTokenTtlSecs", num(MAX_SAFE + 1.0))]),
        ),
        ("now number", options_with(&[("now", num(T0 as f64))])),
        ("now string", options_with(&[("now", js("Date.now"))])),
        ("now object", options_with(&[("now", object(&[]))])),
        ("now null", options_with(&[("now", JsValue::NULL)])),
        (
            "gate array",
            options_with(&[("gate", strings(&["start_task"]))]),
        ),
        ("gate number", options_with(&[("gate", num(1.0))])),
        ("gate null", options_with(&[("gate", JsValue::NULL)])),
        (
            "gate unknown role",
            options_with(&[("gate", object(&[("admin", strings(&["start_task"]))]))]),
        ),
        (
            "gate capitalised role",
            options_with(&[("gate", object(&[("Operator", strings(&["start_task"]))]))]),
        ),
        (
            "gate unknown verb",
            options_with(&[("gate", object(&[("operator", strings(&["fly"]))]))]),
        ),
        (
            "gate verb not string",
            options_with(&[("gate", object(&[("operator", array(&[num(1.0)]))]))]),
        ),
        (
            "gate row not array",
            options_with(&[("gate", object(&[("operator", js("start_task"))]))]),
        ),
        (
            "gate row too long",
            options_with(&[("gate", object(&[("operator", strings(&["heartbeat"; 65]))]))]),
        ),
    ];
    for (what, options) in bad {
        let error = match JsTokenStore::new(options) {
            Ok(_) => panic!("{what}: accepted"),
            Err(error) => error,
        };
        assert_cap_error(&error, "ERR_INVALID_ARGUMENT");
        let message = get_str(&error, "message");
        assert!(
            !message.contains("0707070707"),
            "{what}: message names the secret"
        );
    }
}

#[wasm_bindgen_test]
fn clock_callback_that_fails_fails_closed() {
    // A `now` that throws or answers garbage reads as the far future: expiring
    // tokens are expired and minting is refused, without a trap.
    for now in [
        "throw new Error('clock broke');",
        "return 'soon';",
        "return -1;",
        "return NaN;",
        "return undefined;",
    ] {
        let mut store = new_store(options_with(&[("now", Function::new_no_args(now).into())]));
        fails(
            store.attach_operator(js("op"), undef()),
            "ERR_INVALID_ARGUMENT",
        );
        assert_eq!(store.size(), 0);
    }
    // A worker token minted on a good clock is expired on a broken one.
    let mut good = store();
    let op = operator(&mut good);
    let w = ok(good.mint(js("w"), js("worker"), undef()));
    let mut broken = ok(JsTokenStore::restore(
        js(&good.snapshot().unwrap()),
        options_with(&[("now", Function::new_no_args("throw 1").into())]),
        undef(),
    ));
    fails(
        broken.verify(bearer(&w), js("fetch_data"), undef()),
        "ERR_TOKEN_EXPIRED",
    );
    // Operator tokens are exempt from expiry and still work.
    ok(broken.verify(bearer(&op), js("heartbeat"), undef()));
}

// ---- gate ----------------------------------------------------------------

#[wasm_bindgen_test]
fn custom_gate_row_allows_and_denies() {
    let mut store = new_store(options_with(&[(
        "gate",
        object(&[
            ("observer", strings(&["read_trace"])),
            ("senior", strings(&["start_task", "answer_query"])),
            ("operator", strings(&[])),
        ]),
    )]));
    let obs = ok(store.mint(js("obs"), js("observer"), undef()));
    let senior = ok(store.mint(js("sen"), js("senior"), undef()));
    let op = operator(&mut store);
    let worker = ok(store.mint(js("w"), js("worker"), object(&[("taskId", js("t1"))])));

    // The observer row is replaced: read_task_state (default) is now denied.
    ok(store.verify(bearer(&obs), js("read_trace"), undef()));
    let error = fails(
        store.verify(bearer(&obs), js("read_task_state"), undef()),
        "ERR_ROLE_VIOLATION",
    );
    assert_eq!(get_str(&error, "role"), "observer");
    assert_eq!(get_str(&error, "verb"), "read_task_state");
    assert!(!has(&error, "fingerprint"));

    // The senior row now allows start_task.
    let task = ok(store.start_task(bearer(&senior), undef()));
    assert_eq!(get_f64(&task, "spawnDepth"), 0.0);
    fails(
        store.verify(bearer(&senior), js("pause_loop"), undef()),
        "ERR_ROLE_VIOLATION",
    );

    // The operator row is emptied.
    let error = fails(store.start_task(bearer(&op), undef()), "ERR_ROLE_VIOLATION");
    assert_eq!(get_str(&error, "role"), "operator");
    assert_eq!(get_str(&error, "verb"), "start_task");
    fails(
        store.verify(bearer(&op), js("heartbeat"), undef()),
        "ERR_ROLE_VIOLATION",
    );

    // The worker row, not given, keeps its default.
    ok(store.verify(bearer(&worker), js("fetch_prompt"), js("t1")));
    fails(
        store.verify(bearer(&worker), js("read_trace"), undef()),
        "ERR_ROLE_VIOLATION",
    );
}

// ---- restore ---------------------------------------------------------------

#[wasm_bindgen_test]
fn restore_round_trips() {
    let mut store = store();
    let op = operator(&mut store);
    root(&mut store, &op, "root");
    let w = ok(store.dispatch_attempt(bearer(&op), js("root"), object(&[("maxUses", num(3.0))])));
    ok(store.verify(bearer(&w), js("fetch_prompt"), js("root")));
    let child = ok(store.start_task(bearer(&w), undef()));
    let revoked = ok(store.mint(js("obs"), js("observer"), undef()));
    assert!(ok(store.revoke(js(&fp(&revoked)))));
    let senior = ok(store.mint(js("sen"), js("senior"), object(&[("maxUses", num(1.0))])));

    let snapshot = store.snapshot().unwrap();
    let mut restored = ok(JsTokenStore::restore(
        js(&snapshot),
        options_with(&[]),
        undef(),
    ));
    assert_eq!(state(&restored), state(&store));
    // (The snapshot text may list records in another order.)
    assert_eq!(
        json(
            &ok(JsTokenStore::restore(
                js(&restored.snapshot().unwrap()),
                options_with(&[]),
                undef()
            ))
            .records()
        ),
        json(&store.records())
    );
    assert_eq!(restored.size(), 4);

    // Every call is decided as before.
    for (minted, verb, task) in [
        (&op, "heartbeat", undef()),
        (&w, "fetch_prompt", js("root")),
        (&w, "fetch_prompt", js("other")),
        (&revoked, "read_trace", undef()),
        (&senior, "answer_query", undef()),
        (&senior, "start_task", undef()),
    ] {
        assert_eq!(
            json(&restored.check(bearer(minted), js(verb), task.clone())),
            json(&store.check(bearer(minted), js(verb), task)),
        );
    }
    let grant = ok(restored.verify(bearer(&w), js("post_result"), js("root")));
    assert_eq!(get_f64(&grant, "usesLeft"), 0.0);
    fails(
        restored.verify(bearer(&w), js("post_result"), js("root")),
        "ERR_TOKEN_USES_EXHAUSTED",
    );
    let task = ok(restored.task(get(&child, "taskId")));
    assert_eq!(json(&task), json(&child));
    // The original is untouched by what the restored copy did.
    assert_eq!(uses_left(&store, &fp(&w)), Some(1));
}

#[wasm_bindgen_test]
fn restore_rejects_bad_input() {
    let mut store = store();
    let op = operator(&mut store);
    root(&mut store, &op, "root");
    let snapshot = store.snapshot().unwrap();

    for snapshot in [
        undef(),
        JsValue::NULL,
        num(1.0),
        object(&[]),
        eval("new String('{}')"),
    ] {
        fails(
            JsTokenStore::restore(snapshot, options_with(&[]), undef()),
            "ERR_INVALID_ARGUMENT",
        );
    }
    let truncated = &snapshot[..snapshot.len() / 2];
    let with_nonce = snapshot.replacen(
        "\"sig_hex\"",
        &format!("\"nonce\":\"{}\",\"sig_hex\"", nonce(&op)),
        1,
    );
    assert_ne!(with_nonce, snapshot);
    for corrupt in [
        "",
        "not json",
        "{}",
        "[]",
        "null",
        truncated,
        &snapshot.replacen("\"version\":1", "\"version\":2", 1),
        &snapshot.replacen("\"version\":1", "\"version\":\"1\"", 1),
        &snapshot.replacen("\"operator\"", "\"admin\"", 1),
        &with_nonce,
    ] {
        fails(
            JsTokenStore::restore(js(corrupt), options_with(&[]), undef()),
            "ERR_SNAPSHOT_INVALID",
        );
    }
    // A snapshot of the other format.
    fails(
        JsTokenStore::restore(
            js(&snapshot),
            options_with(&[("format", js("mlua-swarm"))]),
            undef(),
        ),
        "ERR_SNAPSHOT_INVALID",
    );
    // Good text, bad options.
    for options in [
        undef(),
        options_with(&[("secret", bytes(31, 7))]),
        options_with(&[("maxSpawnDepth", num(0.0))]),
    ] {
        fails(
            JsTokenStore::restore(js(&snapshot), options, undef()),
            "ERR_INVALID_ARGUMENT",
        );
    }
    // The source store is unaffected and still works.
    ok(store.verify(bearer(&op), js("heartbeat"), undef()));
}

#[wasm_bindgen_test]
fn journal_replays_after_a_snapshot() {
    // Off by default: nothing is kept.
    let mut quiet = store();
    operator(&mut quiet);
    assert_eq!(quiet.take_journal(), "");

    let options = || {
        options_with(&[
            ("journal", JsValue::TRUE),
            ("now", moving_now("__captokenNowJournal", T0)),
        ])
    };
    let mut store = new_store(options());
    let op = operator(&mut store);
    let base = store.snapshot().unwrap();
    let _ = store.take_journal();
    root(&mut store, &op, "root");
    let w = ok(store.dispatch_attempt(bearer(&op), js("root"), object(&[("maxUses", num(3.0))])));
    ok(store.verify(bearer(&w), js("fetch_prompt"), js("root")));
    ok(store.start_task(bearer(&w), undef()));
    let o = ok(store.mint(js("o"), js("observer"), object(&[("ttlSecs", num(5.0))])));
    let s = ok(store.mint(js("s"), js("senior"), undef()));
    assert!(ok(store.revoke(js(&fp(&s)))));
    set_time("__captokenNowJournal", T0 + 10);
    assert_eq!(store.purge_expired(), 1);
    // Failed calls write nothing.
    fails(
        store.verify(bearer(&w), js("fetch_prompt"), js("other")),
        "ERR_TOKEN_TASK_MISMATCH",
    );
    fails(
        store.dispatch_attempt(bearer(&op), js("nope"), undef()),
        "ERR_TASK_NOT_FOUND",
    );
    let journal = store.take_journal();
    assert_eq!(store.take_journal(), "", "taking empties the journal");
    assert!(journal.ends_with('\n'));
    for line in journal.lines() {
        JSON::parse(line).unwrap_or_else(|_| panic!("not a JSON line: {line}"));
    }
    for minted in [&op, &w, &o, &s] {
        assert!(
            !journal.contains(&nonce(minted)),
            "the journal names a nonce"
        );
    }
    assert!(!journal.contains("nonce"));

    // The snapshot plus the journal rebuild the store.
    let mut rebuilt = ok(JsTokenStore::restore(js(&base), options(), js(&journal)));
    assert_eq!(state(&rebuilt), state(&store));
    assert_eq!(uses_left(&rebuilt, &fp(&w)), Some(1));
    fails(
        rebuilt.verify(bearer(&s), js("answer_query"), undef()),
        "ERR_TOKEN_REVOKED",
    );
    ok(rebuilt.verify(bearer(&w), js("fetch_prompt"), js("root")));
    // The rebuilt store journals too (it was made with journal: true).
    assert!(!rebuilt.take_journal().is_empty());
    // An empty journal, or none, gives the snapshot's state.
    let plain = ok(JsTokenStore::restore(js(&base), options(), js("")));
    assert_eq!(plain.size(), 1);
    let plain = ok(JsTokenStore::restore(js(&base), options(), undef()));
    assert_eq!(plain.size(), 1);

    // Refusals.
    for bad in [num(1.0), JsValue::NULL, object(&[]), JsValue::TRUE] {
        fails(
            JsTokenStore::restore(js(&base), options(), bad),
            "ERR_INVALID_ARGUMENT",
        );
    }
    let first_line = journal.lines().next().unwrap();
    for corrupt in [
        "not json\n".to_owned(),
        "{}\n".to_owned(),
        format!("{}\n", &first_line[..first_line.len() / 2]),
        journal.replacen("\"", "'", 1),
    ] {
        fails(
            JsTokenStore::restore(js(&base), options(), js(&corrupt)),
            "ERR_SNAPSHOT_INVALID",
        );
    }
    for bad in [js("yes"), num(1.0), JsValue::NULL] {
        fails(
            JsTokenStore::new(options_with(&[("journal", bad)])),
            "ERR_INVALID_ARGUMENT",
        );
    }
    ok(store.verify(bearer(&op), js("heartbeat"), undef()));
}

// ---- minting -------------------------------------------------------------

#[wasm_bindgen_test]
fn attach_operator_mints_a_session_token() {
    let mut store = store();
    let op = operator(&mut store);
    let token = get(&op, "token");
    assert_eq!(get_str(&token, "agent_id"), "op-1");
    assert_eq!(get_str(&token, "role"), "operator");
    assert_eq!(json(&get(&token, "scopes")), "[\"*\"]");
    assert!(get(&token, "max_uses").is_null());
    assert!(is_lower_hex(&get_str(&token, "nonce"), 32));
    assert!(is_lower_hex(&get_str(&token, "sig_hex"), 64));
    assert!(is_lower_hex(&fp(&op), 64));
    let bearer_text = bearer(&op).as_string().unwrap();
    assert!(bearer_text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_eq!(store.size(), 1);
    let record = ok(store.record(js(&fp(&op)))).unwrap();
    assert!(record.task_id().is_null());
    assert_eq!(uses(&record), None);

    let op2 = ok(store.attach_operator(
        js("op-2"),
        object(&[
            ("scopes", strings(&["a"])),
            ("maxUses", num(5.0)),
            ("taskId", js("t")),
        ]),
    ));
    assert_eq!(get_f64(&get(&op2, "token"), "max_uses"), 5.0);
    assert_eq!(ok(store.record(js(&fp(&op2)))).unwrap().task_id(), js("t"));
    assert_ne!(fp(&op), fp(&op2));

    let before = state(&store);
    for agent in [
        undef(),
        JsValue::NULL,
        num(5.0),
        js(""),
        js(&"a".repeat(257)),
        js(&"a".repeat(70_000)),
        object(&[]),
    ] {
        fails(
            store.attach_operator(agent, undef()),
            "ERR_INVALID_ARGUMENT",
        );
    }
    for options in [
        num(1.0),
        js("x"),
        strings(&["*"]),
        object(&[("scopes", js("*"))]),
    ] {
        fails(
            store.attach_operator(js("op-3"), options),
            "ERR_INVALID_ARGUMENT",
        );
    }
    assert_eq!(state(&store), before);
    ok(store.attach_operator(js(&"a".repeat(256)), JsValue::NULL));
}

#[wasm_bindgen_test]
fn mint_every_role() {
    let mut store = store();
    for role in ["operator", "worker", "observer", "senior"] {
        let minted = ok(store.mint(
            js(&format!("agent-{role}")),
            js(role),
            object(&[
                ("scopes", strings(&["read", "write"])),
                ("ttlSecs", num(60.0)),
                ("maxUses", num(3.0)),
                ("taskId", js("t1")),
            ]),
        ));
        let token = get(&minted, "token");
        assert_eq!(get_str(&token, "role"), role);
        assert_eq!(get_str(&token, "agent_id"), format!("agent-{role}"));
        assert_eq!(json(&get(&token, "scopes")), "[\"read\",\"write\"]");
        assert_eq!(get_f64(&token, "issued_at"), T0 as f64);
        assert_eq!(get_f64(&token, "expire_at"), (T0 + 60) as f64);
        assert_eq!(get_f64(&token, "max_uses"), 3.0);
        let record = ok(store.record(js(&fp(&minted)))).unwrap();
        assert_eq!(uses(&record), Some(3));
        assert_eq!(record.task_id(), js("t1"));
        assert!(!record.revoked());
        assert_eq!(record.fingerprint(), fp(&minted));
    }
    assert_eq!(store.size(), 4);

    // Defaults: scopes ["*"], unlimited, the store's lifetime, no task.
    let minted = ok(store.mint(js("w"), js("worker"), object(&[])));
    let token = get(&minted, "token");
    assert_eq!(json(&get(&token, "scopes")), "[\"*\"]");
    assert!(get(&token, "max_uses").is_null());
    assert_eq!(get_f64(&token, "expire_at"), (T0 + TTL) as f64);
    assert!(ok(store.record(js(&fp(&minted))))
        .unwrap()
        .task_id()
        .is_null());

    // Edge values that are allowed.
    let minted = ok(store.mint(
        js("w"),
        js("worker"),
        object(&[
            ("maxUses", JsValue::NULL),
            ("taskId", JsValue::NULL),
            ("ttlSecs", num(0.0)),
        ]),
    ));
    assert!(get(&get(&minted, "token"), "max_uses").is_null());
    let minted = ok(store.mint(
        js("w"),
        js("worker"),
        object(&[("maxUses", num(f64::from(u32::MAX)))]),
    ));
    assert_eq!(
        get_f64(&get(&minted, "token"), "max_uses"),
        f64::from(u32::MAX)
    );
    let minted = ok(store.mint(
        js("w"),
        js("worker"),
        object(&[("maxUses", num(0.0)), ("scopes", strings(&[]))]),
    ));
    assert_eq!(uses_left(&store, &fp(&minted)), Some(0));
    fails(
        store.verify(bearer(&minted), js("fetch_data"), undef()),
        "ERR_TOKEN_USES_EXHAUSTED",
    );
    let scopes: Vec<&str> = vec!["s"; 32];
    ok(store.mint(
        js("w"),
        js("worker"),
        object(&[("scopes", strings(&scopes))]),
    ));
}

#[wasm_bindgen_test]
fn mint_rejects_bad_arguments() {
    let mut store = store();
    let op = operator(&mut store);
    let before = state(&store);
    for role in [
        undef(),
        JsValue::NULL,
        js("admin"),
        js("Operator"),
        js(""),
        num(0.0),
        js(&"w".repeat(100)),
        strings(&["worker"]),
    ] {
        fails(store.mint(js("a"), role, undef()), "ERR_INVALID_ARGUMENT");
    }
    for agent in [
        undef(),
        num(1.0),
        js(""),
        eval("'agent\\uD800'"),
        eval("'\\uDC00'"),
    ] {
        fails(
            store.mint(agent, js("worker"), undef()),
            "ERR_INVALID_ARGUMENT",
        );
    }
    let many: Vec<&str> = vec!["s"; 33];
    let too_many: Vec<&str> = vec!["s"; 1025];
    let bad_options: Vec<(&str, JsValue)> = vec![
        ("options number", num(1.0)),
        ("options array", array(&[])),
        ("options function", Function::new_no_args("").into()),
        ("scopes string", object(&[("scopes", js("*"))])),
        ("scopes null", object(&[("scopes", JsValue::NULL)])),
        (
            "scopes object",
            object(&[("scopes", object(&[("0", js("a"))]))]),
        ),
        (
            "scopes number entries",
            object(&[("scopes", array(&[num(1.0)]))]),
        ),
        (
            "scopes mixed entries",
            object(&[("scopes", array(&[js("a"), JsValue::NULL]))]),
        ),
        ("scopes empty entry", object(&[("scopes", strings(&[""]))])),
        (
            "scopes long entry",
            object(&[("scopes", strings(&[&"s".repeat(129)]))]),
        ),
        (
            "scopes huge entry",
            object(&[("scopes", strings(&[&"s".repeat(70_000)]))]),
        ),
        ("scopes 33", object(&[("scopes", strings(&many))])),
        ("scopes 1025", object(&[("scopes", strings(&too_many))])),
        ("ttlSecs negative", object(&[("ttlSecs", num(-1.0))])),
        ("ttlSecs 1.5", object(&[("ttlSecs", num(1.5))])),
        ("ttlSecs NaN", object(&[("ttlSecs", num(f64::NAN))])),
        ("ttlSecs string", object(&[("ttlSecs", js("60"))])),
        ("ttlSecs null", object(&[("ttlSecs", JsValue::NULL)])),
        (
            "ttlSecs beyond the safe range",
            object(&[("ttlSecs", num(MAX_SAFE))]),
        ),
        ("maxUses 1.5", object(&[("maxUses", num(1.5))])),
        ("maxUses -1", object(&[("maxUses", num(-1.0))])),
        ("maxUses 2^32", object(&[("maxUses", num(4_294_967_296.0))])),
        ("maxUses huge", object(&[("maxUses", num(1e300))])),
        ("maxUses string", object(&[("maxUses", js("3"))])),
        ("maxUses bigint", object(&[("maxUses", eval("3n"))])),
        ("taskId number", object(&[("taskId", num(7.0))])),
        ("taskId empty", object(&[("taskId", js(""))])),
        (
            "taskId too long",
            object(&[("taskId", js(&"t".repeat(257)))]),
        ),
        (
            "taskId huge",
            object(&[("taskId", js(&"t".repeat(70_000)))]),
        ),
        (
            "taskId lone surrogate",
            object(&[("taskId", eval("'t\\uD800'"))]),
        ),
        (
            "scopes lone surrogate",
            object(&[("scopes", array(&[eval("'\\uDFFF'")]))]),
        ),
    ];
    for (what, options) in bad_options {
        let error = match store.mint(js("a"), js("worker"), options) {
            Ok(_) => panic!("{what}: accepted"),
            Err(error) => error,
        };
        assert_cap_error(&error, "ERR_INVALID_ARGUMENT");
    }
    assert_eq!(state(&store), before, "failed mints changed the store");
    ok(store.verify(bearer(&op), js("heartbeat"), undef()));
    ok(store.mint(js("a"), js("worker"), undef()));
    assert_eq!(store.size(), 2);
}

#[wasm_bindgen_test]
fn adopt_records_a_token_minted_elsewhere() {
    let mut minter = store();
    let w = ok(minter.mint(js("w"), js("worker"), object(&[("maxUses", num(2.0))])));
    let mut store = store();
    let op = operator(&mut store);
    fails(
        store.verify(bearer(&w), js("fetch_data"), undef()),
        "ERR_TOKEN_NOT_FOUND",
    );

    let adopted = ok(store.adopt(bearer(&w), js("ext-task")));
    assert_eq!(adopted, fp(&w));
    assert_eq!(store.size(), 2);
    let record = ok(store.record(js(&adopted))).unwrap();
    assert_eq!(record.task_id(), js("ext-task"));
    assert_eq!(uses(&record), Some(2));
    ok(store.verify(bearer(&w), js("fetch_prompt"), js("ext-task")));
    assert_eq!(uses_left(&store, &adopted), Some(1));

    // Adopting again changes nothing: the spent budget is not reset.
    let before = state(&store);
    assert_eq!(ok(store.adopt(bearer(&w), undef())), adopted);
    assert_eq!(state(&store), before);
    assert_eq!(uses_left(&store, &adopted), Some(1));

    // Without a task.
    let obs = ok(minter.mint(js("o"), js("observer"), undef()));
    assert_eq!(ok(store.adopt(bearer(&obs), JsValue::NULL)), fp(&obs));
    assert!(ok(store.record(js(&fp(&obs)))).unwrap().task_id().is_null());

    // Failures.
    let before = state(&store);
    let mut stranger = new_store(options_with(&[("secret", bytes(32, 8))]));
    let foreign = ok(stranger.mint(js("x"), js("worker"), undef()));
    let mut mlua = new_store(options_with(&[("format", js("mlua-swarm"))]));
    let other_format = ok(mlua.mint(js("x"), js("worker"), undef()));
    let late = ok(minter.mint(js("late"), js("worker"), object(&[("ttlSecs", num(0.0))])));
    let fresh = ok(minter.mint(js("fresh"), js("worker"), undef()));
    for value in [undef(), JsValue::NULL, num(1.0), object(&[])] {
        fails(store.adopt(value, undef()), "ERR_INVALID_ARGUMENT");
    }
    fails(store.adopt(js("garbage"), undef()), "ERR_MALFORMED_TOKEN");
    fails(
        store.adopt(js(&"A".repeat(9000)), undef()),
        "ERR_MALFORMED_TOKEN",
    );
    fails(store.adopt(bearer(&foreign), undef()), "ERR_BAD_SIGNATURE");
    fails(
        store.adopt(bearer(&other_format), undef()),
        "ERR_BAD_SIGNATURE",
    );
    fails(store.adopt(bearer(&late), undef()), "ERR_TOKEN_EXPIRED");
    fails(
        store.adopt(bearer(&fresh), num(5.0)),
        "ERR_INVALID_ARGUMENT",
    );
    fails(store.adopt(bearer(&fresh), js("")), "ERR_INVALID_ARGUMENT");
    fails(
        store.adopt(bearer(&fresh), js(&"t".repeat(257))),
        "ERR_INVALID_ARGUMENT",
    );
    assert_eq!(state(&store), before);
    ok(store.verify(bearer(&op), js("heartbeat"), undef()));
}

// ---- tasks -----------------------------------------------------------------

#[wasm_bindgen_test]
fn start_task_roots_children_and_depth_cap() {
    let mut store = new_store(options_with(&[("maxSpawnDepth", num(3.0))]));
    let op = operator(&mut store);

    let generated = ok(store.start_task(bearer(&op), undef()));
    let generated_id = get_str(&generated, "taskId");
    assert!(
        generated_id.starts_with("task-") && is_lower_hex(&generated_id[5..], 12),
        "{generated_id}"
    );
    assert!(get(&generated, "parentId").is_null());
    assert_eq!(get_f64(&generated, "spawnDepth"), 0.0);
    let other = ok(store.start_task(bearer(&op), object(&[])));
    assert_ne!(get_str(&other, "taskId"), generated_id);

    let r = root(&mut store, &op, "root");
    assert_eq!(
        json(&r),
        "{\"taskId\":\"root\",\"parentId\":null,\"spawnDepth\":0}"
    );

    let w0 = ok(store.dispatch_attempt(bearer(&op), js("root"), undef()));
    let child = ok(store.start_task(
        bearer(&op),
        object(&[("taskId", js("child")), ("parentId", js("root"))]),
    ));
    assert_eq!(
        json(&child),
        "{\"taskId\":\"child\",\"parentId\":\"root\",\"spawnDepth\":1}"
    );
    let w1 = ok(store.dispatch_attempt(bearer(&w0), js("child"), object(&[("maxUses", num(1.0))])));
    let grandchild = ok(store.start_task(bearer(&w1), undef()));
    assert_eq!(get_str(&grandchild, "parentId"), "child");
    assert_eq!(get_f64(&grandchild, "spawnDepth"), 2.0);
    assert_eq!(uses_left(&store, &fp(&w1)), Some(0));

    // Depth 3 would reach maxSpawnDepth 3.
    let gc_id = get_str(&grandchild, "taskId");
    let w2 = ok(store.dispatch_attempt(bearer(&op), js(&gc_id), object(&[("maxUses", num(5.0))])));
    let before = state(&store);
    let error = fails(
        store.start_task(bearer(&w2), undef()),
        "ERR_SPAWN_DEPTH_EXCEEDED",
    );
    assert_eq!(get_f64(&error, "current"), 3.0);
    assert_eq!(get_f64(&error, "max"), 3.0);
    fails(
        store.start_task(bearer(&w2), object(&[("taskId", js("too-deep"))])),
        "ERR_SPAWN_DEPTH_EXCEEDED",
    );
    assert_eq!(
        state(&store),
        before,
        "a refused start_task spent or created something"
    );
    assert_eq!(uses_left(&store, &fp(&w2)), Some(5));
    assert!(ok(store.task(js("too-deep"))).is_undefined());

    // Other refusals, none of which change anything.
    fails(
        store.start_task(bearer(&op), object(&[("taskId", js("root"))])),
        "ERR_INVALID_ARGUMENT",
    );
    fails(
        store.start_task(bearer(&w1), undef()),
        "ERR_TOKEN_USES_EXHAUSTED",
    );
    let untracked = ok(store.mint(
        js("u"),
        js("worker"),
        object(&[("taskId", js("elsewhere"))]),
    ));
    let unbound = ok(store.mint(js("u"), js("worker"), undef()));
    let obs = ok(store.mint(js("o"), js("observer"), undef()));
    let before = state(&store);
    fails(
        store.start_task(bearer(&untracked), undef()),
        "ERR_TASK_NOT_FOUND",
    );
    fails(
        store.start_task(bearer(&unbound), undef()),
        "ERR_TASK_NOT_FOUND",
    );
    fails(
        store.start_task(bearer(&obs), undef()),
        "ERR_ROLE_VIOLATION",
    );
    for b in [undef(), num(1.0), object(&[])] {
        fails(store.start_task(b, undef()), "ERR_INVALID_ARGUMENT");
    }
    fails(
        store.start_task(js("garbage"), undef()),
        "ERR_MALFORMED_TOKEN",
    );
    for options in [
        num(1.0),
        js("root2"),
        array(&[]),
        object(&[("taskId", num(5.0))]),
        object(&[("taskId", js(""))]),
    ] {
        fails(
            store.start_task(bearer(&op), options),
            "ERR_INVALID_ARGUMENT",
        );
    }
    assert_eq!(state(&store), before);
    root(&mut store, &op, "root2");
}

#[wasm_bindgen_test]
fn spawn_depth_defaults_to_four() {
    let mut store = store();
    let op = operator(&mut store);
    let mut task = get_str(&root(&mut store, &op, "d0"), "taskId");
    for depth in 1..=3 {
        let w = ok(store.dispatch_attempt(bearer(&op), js(&task), undef()));
        let child = ok(store.start_task(bearer(&w), undef()));
        assert_eq!(get_f64(&child, "spawnDepth"), f64::from(depth));
        task = get_str(&child, "taskId");
    }
    let w = ok(store.dispatch_attempt(bearer(&op), js(&task), undef()));
    let error = fails(
        store.start_task(bearer(&w), undef()),
        "ERR_SPAWN_DEPTH_EXCEEDED",
    );
    assert_eq!(get_f64(&error, "current"), 4.0);
    assert_eq!(get_f64(&error, "max"), 4.0);

    // maxSpawnDepth 1: roots only.
    let mut flat = new_store(options_with(&[("maxSpawnDepth", num(1.0))]));
    let op = operator(&mut flat);
    root(&mut flat, &op, "r");
    let w = ok(flat.dispatch_attempt(bearer(&op), js("r"), undef()));
    let error = fails(
        flat.start_task(bearer(&w), undef()),
        "ERR_SPAWN_DEPTH_EXCEEDED",
    );
    assert_eq!(get_f64(&error, "current"), 1.0);
    assert_eq!(get_f64(&error, "max"), 1.0);
}

#[wasm_bindgen_test]
fn dispatch_attempt_mints_bound_workers() {
    let mut store = new_store(options_with(&[("workerTokenTtlSecs", num(600.0))]));
    let op = operator(&mut store);
    root(&mut store, &op, "root");
    let w = ok(store.dispatch_attempt(bearer(&op), js("root"), undef()));
    let token = get(&w, "token");
    assert_eq!(get_str(&token, "agent_id"), "worker-of-root");
    assert_eq!(get_str(&token, "role"), "worker");
    assert_eq!(json(&get(&token, "scopes")), "[\"*\"]");
    assert!(get(&token, "max_uses").is_null());
    assert_eq!(get_f64(&token, "expire_at"), (T0 + 600) as f64);
    let record = ok(store.record(js(&fp(&w)))).unwrap();
    assert_eq!(record.task_id(), js("root"));
    let grant = ok(store.verify(bearer(&w), js("read_task_state"), js("root")));
    assert_eq!(get_str(&grant, "taskId"), "root");

    let w2 = ok(store.dispatch_attempt(
        bearer(&op),
        js("root"),
        object(&[
            ("maxUses", num(2.0)),
            ("ttlSecs", num(10.0)),
            ("scopes", strings(&["fetch"])),
            ("taskId", js("root")),
        ]),
    ));
    let token = get(&w2, "token");
    assert_eq!(get_f64(&token, "max_uses"), 2.0);
    assert_eq!(get_f64(&token, "expire_at"), (T0 + 10) as f64);
    assert_eq!(json(&get(&token, "scopes")), "[\"fetch\"]");

    // A worker may dispatch on a tracked task too.
    ok(store.dispatch_attempt(bearer(&w), js("root"), undef()));

    let budget = ok(store.mint(js("o2"), js("operator"), object(&[("maxUses", num(1.0))])));
    let before = state(&store);
    let error = fails(
        store.dispatch_attempt(bearer(&op), js("nope"), undef()),
        "ERR_TASK_NOT_FOUND",
    );
    assert!(get_str(&error, "message").contains("nope"));
    fails(
        store.dispatch_attempt(bearer(&budget), js("nope"), undef()),
        "ERR_TASK_NOT_FOUND",
    );
    fails(
        store.dispatch_attempt(
            bearer(&budget),
            js("root"),
            object(&[("taskId", js("other"))]),
        ),
        "ERR_INVALID_ARGUMENT",
    );
    fails(
        store.dispatch_attempt(
            bearer(&budget),
            js("root"),
            object(&[("maxUses", num(-1.0))]),
        ),
        "ERR_INVALID_ARGUMENT",
    );
    fails(
        store.dispatch_attempt(
            bearer(&budget),
            js("root"),
            object(&[("ttlSecs", num(MAX_SAFE))]),
        ),
        "ERR_INVALID_ARGUMENT",
    );
    for task in [
        undef(),
        JsValue::NULL,
        num(1.0),
        js(""),
        js(&"t".repeat(70_000)),
    ] {
        fails(
            store.dispatch_attempt(bearer(&op), task, undef()),
            "ERR_INVALID_ARGUMENT",
        );
    }
    fails(
        store.dispatch_attempt(num(1.0), js("root"), undef()),
        "ERR_INVALID_ARGUMENT",
    );
    fails(
        store.dispatch_attempt(js("xx"), js("root"), undef()),
        "ERR_MALFORMED_TOKEN",
    );
    let obs = ok(store.mint(js("o"), js("observer"), undef()));
    let before_obs = state(&store);
    fails(
        store.dispatch_attempt(bearer(&obs), js("root"), undef()),
        "ERR_ROLE_VIOLATION",
    );
    assert_eq!(state(&store), before_obs);
    assert_ne!(state(&store), before);
    // The one-use operator spent nothing on all those refusals.
    assert_eq!(uses_left(&store, &fp(&budget)), Some(1));
    ok(store.dispatch_attempt(bearer(&budget), js("root"), undef()));
    assert_eq!(uses_left(&store, &fp(&budget)), Some(0));
}

// ---- verify and check -------------------------------------------------------

#[wasm_bindgen_test]
fn verify_returns_a_grant_and_spends() {
    let mut store = store();
    let op = operator(&mut store);
    root(&mut store, &op, "root");
    let w = ok(store.dispatch_attempt(
        bearer(&op),
        js("root"),
        object(&[("maxUses", num(2.0)), ("scopes", strings(&["read"]))]),
    ));
    let grant = ok(store.verify(bearer(&w), js("fetch_prompt"), js("root")));
    assert_eq!(get_str(&grant, "fingerprint"), fp(&w));
    assert_eq!(get_str(&grant, "agentId"), "worker-of-root");
    assert_eq!(get_str(&grant, "role"), "worker");
    assert_eq!(json(&get(&grant, "scopes")), "[\"read\"]");
    assert_eq!(get_str(&grant, "taskId"), "root");
    assert_eq!(get_f64(&grant, "usesLeft"), 1.0);
    assert!(
        !has(&grant, "allowed"),
        "verify's grant has no allowed field"
    );
    let grant = ok(store.verify(bearer(&w), js("fetch_data"), undef()));
    assert_eq!(get_f64(&grant, "usesLeft"), 0.0);
    fails(
        store.verify(bearer(&w), js("fetch_data"), undef()),
        "ERR_TOKEN_USES_EXHAUSTED",
    );

    let grant = ok(store.verify(bearer(&op), js("start_task"), undef()));
    assert!(get(&grant, "taskId").is_null());
    assert!(get(&grant, "usesLeft").is_null());
    assert_eq!(get_str(&grant, "role"), "operator");
    assert_eq!(get_str(&grant, "agentId"), "op-1");
}

#[wasm_bindgen_test]
fn verify_denials_carry_codes_and_details() {
    let mut store = moving_store("__captokenNowVerify");
    let op = operator(&mut store);
    root(&mut store, &op, "root");
    let w = ok(store.dispatch_attempt(bearer(&op), js("root"), object(&[("maxUses", num(5.0))])));
    let wfp = fp(&w);
    let before = state(&store);
    let mut secrets = vec![nonce(&w), nonce(&op)];

    // Step 1: decode.
    for b in [
        undef(),
        JsValue::NULL,
        num(1.0),
        JsValue::TRUE,
        object(&[]),
        strings(&["x"]),
        eval("Symbol('b')"),
    ] {
        fails(
            store.verify(b, js("fetch_data"), undef()),
            "ERR_INVALID_ARGUMENT",
        );
    }
    for b in [
        "",
        "garbage!",
        "AAAA",
        &"A".repeat(9000),
        &"A".repeat(200_000),
    ] {
        fails(
            store.verify(js(b), js("fetch_data"), undef()),
            "ERR_MALFORMED_TOKEN",
        );
    }
    let not_a_token = base64url(b"{\"agent_id\":\"x\"}");
    fails(
        store.verify(js(&not_a_token), js("fetch_data"), undef()),
        "ERR_MALFORMED_TOKEN",
    );
    // Bad verb or task argument.
    for verb in [
        undef(),
        JsValue::NULL,
        js("fly"),
        js("FETCH_PROMPT"),
        js(""),
        num(1.0),
        js(&"v".repeat(100)),
    ] {
        fails(
            store.verify(bearer(&w), verb, js("root")),
            "ERR_INVALID_ARGUMENT",
        );
    }
    for task in [
        num(1.0),
        object(&[]),
        JsValue::TRUE,
        js(&"t".repeat(70_000)),
        eval("'root\\uD800'"),
    ] {
        fails(
            store.verify(bearer(&w), js("fetch_prompt"), task),
            "ERR_INVALID_ARGUMENT",
        );
    }
    // Step 2: signature.
    let tampered = tamper(&bearer(&w).as_string().unwrap());
    fails(
        store.verify(js(&tampered), js("fetch_prompt"), js("root")),
        "ERR_BAD_SIGNATURE",
    );
    let mut stranger = new_store(options_with(&[("secret", bytes(32, 9))]));
    let foreign = ok(stranger.mint(js("x"), js("worker"), undef()));
    fails(
        store.verify(bearer(&foreign), js("fetch_data"), undef()),
        "ERR_BAD_SIGNATURE",
    );
    // Step 4: gate.
    let error = fails(
        store.verify(bearer(&w), js("answer_query"), undef()),
        "ERR_ROLE_VIOLATION",
    );
    assert_eq!(get_str(&error, "role"), "worker");
    assert_eq!(get_str(&error, "verb"), "answer_query");
    // Step 5: record lookup.
    let mut elsewhere = store_like();
    let unknown = ok(elsewhere.mint(js("x"), js("worker"), undef()));
    secrets.push(nonce(&unknown));
    let error = fails(
        store.verify(bearer(&unknown), js("fetch_data"), undef()),
        "ERR_TOKEN_NOT_FOUND",
    );
    assert_eq!(get_str(&error, "fingerprint"), fp(&unknown));
    // Step 6: ownership.
    let error = fails(
        store.verify(bearer(&w), js("fetch_prompt"), js("other")),
        "ERR_TOKEN_TASK_MISMATCH",
    );
    assert_eq!(get_str(&error, "bound"), "root");
    assert_eq!(get_str(&error, "arg"), "other");
    assert_eq!(get_str(&error, "fingerprint"), wfp);
    let error = fails(
        store.verify(bearer(&w), js("post_result"), undef()),
        "ERR_TOKEN_TASK_MISMATCH",
    );
    assert_eq!(get_str(&error, "bound"), "root");
    assert!(!has(&error, "arg"));
    let unbound = ok(store.mint(js("u"), js("worker"), undef()));
    let error = fails(
        store.verify(bearer(&unbound), js("poll_task"), js("root")),
        "ERR_TOKEN_TASK_MISMATCH",
    );
    assert!(!has(&error, "bound"));
    assert_eq!(get_str(&error, "arg"), "root");
    secrets.push(nonce(&unbound));
    assert!(ok(store.revoke(js(&fp(&unbound)))));

    // None of those spent or changed anything.
    assert_eq!(uses_left(&store, &wfp), Some(5));
    ok(store.verify(bearer(&w), js("cancel_task"), js("root")));
    assert_eq!(uses_left(&store, &wfp), Some(4));
    let before_unbound = state(&store);

    // Step 7: revoked beats uses left.
    let error = fails(
        store.verify(bearer(&unbound), js("fetch_data"), undef()),
        "ERR_TOKEN_REVOKED",
    );
    assert_eq!(get_str(&error, "fingerprint"), fp(&unbound));
    assert_eq!(state(&store), before_unbound);

    // Step 3: expiry (Operator tokens exempt).
    set_time("__captokenNowVerify", T0 + TTL);
    let error = fails(
        store.verify(bearer(&w), js("fetch_prompt"), js("root")),
        "ERR_TOKEN_EXPIRED",
    );
    assert_eq!(get_str(&error, "fingerprint"), wfp);
    ok(store.verify(bearer(&op), js("heartbeat"), undef()));
    set_time("__captokenNowVerify", T0);

    // No message, code or detail names a nonce.
    for (b, verb, task) in [
        (bearer(&w), "fetch_prompt", js("other")),
        (bearer(&unbound), "fetch_data", undef()),
        (bearer(&unknown), "fetch_data", undef()),
    ] {
        let error = store.verify(b, js(verb), task).err().unwrap();
        let text = format!("{} {}", get_str(&error, "message"), json(&error));
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "an error names a nonce: {text}"
            );
        }
    }
    assert_ne!(state(&store), before);
}

#[wasm_bindgen_test]
fn check_decides_like_verify_without_spending_or_throwing() {
    let mut store = moving_store("__captokenNowCheck");
    let op = operator(&mut store);
    root(&mut store, &op, "root");
    let w = ok(store.dispatch_attempt(bearer(&op), js("root"), object(&[("maxUses", num(1.0))])));
    let revoked = ok(store.mint(js("r"), js("worker"), undef()));
    ok(store.revoke(js(&fp(&revoked))));
    let spent = ok(store.mint(js("s"), js("observer"), object(&[("maxUses", num(0.0))])));
    let mut elsewhere = store_like();
    let unknown = ok(elsewhere.mint(js("x"), js("worker"), undef()));
    let mut stranger = new_store(options_with(&[("secret", bytes(32, 9))]));
    let foreign = ok(stranger.mint(js("x"), js("worker"), undef()));
    let before = state(&store);

    let allowed = store.check(bearer(&w), js("fetch_prompt"), js("root"));
    assert!(get_bool(&allowed, "allowed"));
    assert_eq!(get_str(&allowed, "fingerprint"), fp(&w));
    assert_eq!(get_str(&allowed, "agentId"), "worker-of-root");
    assert_eq!(get_str(&allowed, "role"), "worker");
    assert_eq!(json(&get(&allowed, "scopes")), "[\"*\"]");
    assert_eq!(get_str(&allowed, "taskId"), "root");
    assert_eq!(
        get_f64(&allowed, "usesLeft"),
        1.0,
        "check reports uses as they stand"
    );
    // Many checks spend nothing.
    for _ in 0..5 {
        assert!(get_bool(
            &store.check(bearer(&w), js("fetch_prompt"), js("root")),
            "allowed"
        ));
    }
    assert_eq!(state(&store), before);

    let denials: Vec<(JsValue, JsValue, JsValue, &str)> = vec![
        (num(1.0), js("fetch_data"), undef(), "ERR_INVALID_ARGUMENT"),
        (
            js("garbage"),
            js("fetch_data"),
            undef(),
            "ERR_MALFORMED_TOKEN",
        ),
        (
            js(&"A".repeat(20_000)),
            js("fetch_data"),
            undef(),
            "ERR_MALFORMED_TOKEN",
        ),
        (
            js(&tamper(&bearer(&w).as_string().unwrap())),
            js("fetch_prompt"),
            js("root"),
            "ERR_BAD_SIGNATURE",
        ),
        (
            bearer(&foreign),
            js("fetch_data"),
            undef(),
            "ERR_BAD_SIGNATURE",
        ),
        (bearer(&w), js("read_trace"), undef(), "ERR_ROLE_VIOLATION"),
        (
            bearer(&unknown),
            js("fetch_data"),
            undef(),
            "ERR_TOKEN_NOT_FOUND",
        ),
        (
            bearer(&w),
            js("fetch_prompt"),
            js("other"),
            "ERR_TOKEN_TASK_MISMATCH",
        ),
        (
            bearer(&revoked),
            js("fetch_data"),
            undef(),
            "ERR_TOKEN_REVOKED",
        ),
        (
            bearer(&spent),
            js("read_trace"),
            undef(),
            "ERR_TOKEN_USES_EXHAUSTED",
        ),
        (bearer(&w), js("fly"), js("root"), "ERR_INVALID_ARGUMENT"),
        (
            bearer(&w),
            js("fetch_prompt"),
            num(3.0),
            "ERR_INVALID_ARGUMENT",
        ),
    ];
    for (b, verb, task, code) in denials {
        let decision = store.check(b, verb, task);
        assert_denied(&decision, code);
        for secret in [nonce(&w), nonce(&revoked), nonce(&unknown)] {
            assert!(!json(&decision).contains(&secret));
        }
    }
    set_time("__captokenNowCheck", T0 + TTL + 1);
    assert_denied(
        &store.check(bearer(&w), js("fetch_prompt"), js("root")),
        "ERR_TOKEN_EXPIRED",
    );
    set_time("__captokenNowCheck", T0);

    // Garbage of every type in every position: a denial, never a throw.
    for value in garbage() {
        for (b, verb, task) in [
            (value.clone(), js("fetch_prompt"), js("root")),
            (bearer(&w), value.clone(), js("root")),
            (value.clone(), value.clone(), value.clone()),
        ] {
            let decision = store.check(b, verb, task);
            assert!(!get_bool(&decision, "allowed"), "{}", describe(&decision));
            assert!(ALL_CODES.contains(&get_str(&decision, "code").as_str()));
        }
        // As the task argument, absent values are fine, others are refused.
        let decision = store.check(bearer(&w), js("fetch_data"), value.clone());
        if value.is_undefined() || value.is_null() {
            assert!(get_bool(&decision, "allowed"));
        } else if value.is_string() {
            assert!(
                get_bool(&decision, "allowed")
                    || get_str(&decision, "code") == "ERR_INVALID_ARGUMENT"
            );
        } else {
            assert_denied(&decision, "ERR_INVALID_ARGUMENT");
        }
    }
    assert_eq!(state(&store), before, "check changed the store");
    ok(store.verify(bearer(&w), js("fetch_prompt"), js("root")));
    assert_denied(
        &store.check(bearer(&w), js("fetch_prompt"), js("root")),
        "ERR_TOKEN_USES_EXHAUSTED",
    );
}

fn assert_denied(decision: &JsValue, code: &str) {
    assert_eq!(
        get(decision, "allowed"),
        JsValue::FALSE,
        "{}",
        describe(decision)
    );
    assert_eq!(get_str(decision, "code"), code, "{}", describe(decision));
    assert!(!get_str(decision, "message").is_empty());
    let keys: Vec<String> = Object::keys(decision.unchecked_ref::<Object>())
        .iter()
        .map(|k| k.as_string().unwrap())
        .collect();
    assert_eq!(keys, ["allowed", "code", "message"]);
}

/// A store on the test secret with a clock moved through `globalThis[name]`.
fn moving_store(name: &str) -> JsTokenStore {
    new_store(options_with(&[("now", moving_now(name, T0))]))
}

/// Another store on the same secret.
fn store_like() -> JsTokenStore {
    store()
}

fn base64url(data: &[u8]) -> String {
    let binary: String = data.iter().map(|&b| char::from(b)).collect();
    let btoa: Function = get(&js_sys::global(), "btoa").dyn_into().unwrap();
    let text = btoa
        .call1(&JsValue::UNDEFINED, &js(&binary))
        .unwrap()
        .as_string()
        .unwrap();
    text.trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

fn atob(text: &str) -> Vec<u8> {
    let mut padded = text.replace('-', "+").replace('_', "/");
    while padded.len() % 4 != 0 {
        padded.push('=');
    }
    let atob: Function = get(&js_sys::global(), "atob").dyn_into().unwrap();
    let binary = atob
        .call1(&JsValue::UNDEFINED, &js(&padded))
        .unwrap()
        .as_string()
        .unwrap();
    binary.chars().map(|c| c as u8).collect()
}

/// The bearer with one hex digit of its signature changed.
fn tamper(bearer: &str) -> String {
    let token_json = String::from_utf8(atob(bearer)).unwrap();
    let token = JSON::parse(&token_json).unwrap();
    let sig = get_str(&token, "sig_hex");
    let flipped = if sig.starts_with('0') { "1" } else { "0" };
    Reflect::set(
        &token,
        &js("sig_hex"),
        &js(&format!("{flipped}{}", &sig[1..])),
    )
    .unwrap();
    base64url(json(&token).as_bytes())
}

// ---- lifecycle ---------------------------------------------------------------

#[wasm_bindgen_test]
fn revoke_by_fingerprint() {
    let mut store = store();
    let op = operator(&mut store);
    let w = ok(store.mint(js("w"), js("worker"), undef()));
    assert!(ok(store.revoke(js(&fp(&w)))));
    assert!(!ok(store.revoke(js(&fp(&w)))), "already revoked");
    assert!(!ok(store.revoke(js(UNKNOWN_FP))), "unknown");
    assert!(ok(store.record(js(&fp(&w)))).unwrap().revoked());
    fails(
        store.verify(bearer(&w), js("fetch_data"), undef()),
        "ERR_TOKEN_REVOKED",
    );
    let before = state(&store);
    for value in [
        undef(),
        num(1.0),
        js(""),
        js("xyz"),
        js(&UNKNOWN_FP.to_uppercase()),
        js(&UNKNOWN_FP[..63]),
        js(&format!("{UNKNOWN_FP}0")),
        js(&"g".repeat(64)),
        js(&nonce(&op)),
    ] {
        fails(store.revoke(value), "ERR_INVALID_ARGUMENT");
    }
    assert_eq!(state(&store), before);
    ok(store.verify(bearer(&op), js("heartbeat"), undef()));
}

#[wasm_bindgen_test]
fn revoke_task_revokes_the_subtree() {
    let mut store = store();
    let op = operator(&mut store);
    root(&mut store, &op, "root");
    root(&mut store, &op, "other");
    let w_root = ok(store.dispatch_attempt(bearer(&op), js("root"), undef()));
    ok(store.start_task(
        bearer(&op),
        object(&[("taskId", js("child")), ("parentId", js("root"))]),
    ));
    let w_child = ok(store.dispatch_attempt(bearer(&op), js("child"), undef()));
    let w_other = ok(store.dispatch_attempt(bearer(&op), js("other"), undef()));
    let w_ext = ok(store.mint(js("e"), js("worker"), object(&[("taskId", js("ext"))])));

    assert_eq!(ok(store.revoke_task(js("child"))), 1);
    assert_eq!(
        ok(store.revoke_task(js("root"))),
        1,
        "child's token was already revoked"
    );
    assert_eq!(ok(store.revoke_task(js("root"))), 0);
    assert!(ok(store.record(js(&fp(&w_root)))).unwrap().revoked());
    assert!(ok(store.record(js(&fp(&w_child)))).unwrap().revoked());
    assert!(!ok(store.record(js(&fp(&w_other)))).unwrap().revoked());
    assert_eq!(ok(store.revoke_task(js("nothing-here"))), 0);
    assert_eq!(ok(store.revoke_task(js("ext"))), 1, "untracked bound task");
    assert!(ok(store.record(js(&fp(&w_ext)))).unwrap().revoked());

    let before = state(&store);
    for value in [
        undef(),
        JsValue::NULL,
        num(1.0),
        js(""),
        js(&"t".repeat(70_000)),
    ] {
        fails(store.revoke_task(value), "ERR_INVALID_ARGUMENT");
    }
    assert_eq!(state(&store), before);
    ok(store.verify(bearer(&w_other), js("fetch_prompt"), js("other")));
}

#[wasm_bindgen_test]
fn remint_renews_a_late_worker_token() {
    let mut store = moving_store("__captokenNowRemint");
    let op = operator(&mut store);
    root(&mut store, &op, "root");
    let w = ok(store.dispatch_attempt(
        bearer(&op),
        js("root"),
        object(&[("maxUses", num(3.0)), ("scopes", strings(&["a", "b"]))]),
    ));
    ok(store.verify(bearer(&w), js("fetch_prompt"), js("root")));
    set_time("__captokenNowRemint", T0 + TTL + 5);
    fails(
        store.verify(bearer(&w), js("fetch_prompt"), js("root")),
        "ERR_TOKEN_EXPIRED",
    );

    let renewed = ok(store.remint(bearer(&w)));
    let token = get(&renewed, "token");
    assert_eq!(get_str(&token, "agent_id"), "worker-of-root");
    assert_eq!(get_str(&token, "role"), "worker");
    assert_eq!(json(&get(&token, "scopes")), "[\"a\",\"b\"]");
    assert_eq!(get_f64(&token, "max_uses"), 2.0);
    assert_eq!(get_f64(&token, "issued_at"), (T0 + TTL + 5) as f64);
    assert_eq!(get_f64(&token, "expire_at"), (T0 + TTL + 5 + TTL) as f64);
    assert_ne!(fp(&renewed), fp(&w));
    assert_eq!(
        ok(store.record(js(&fp(&renewed)))).unwrap().task_id(),
        js("root")
    );
    assert!(
        ok(store.record(js(&fp(&w)))).unwrap().revoked(),
        "the old record is revoked"
    );
    let grant = ok(store.verify(bearer(&renewed), js("fetch_prompt"), js("root")));
    assert_eq!(get_f64(&grant, "usesLeft"), 1.0);

    // Refusals.
    let before = state(&store);
    fails(store.remint(bearer(&w)), "ERR_TOKEN_REVOKED");
    fails(store.remint(bearer(&op)), "ERR_INVALID_ARGUMENT");
    let obs = ok(store.mint(js("o"), js("observer"), undef()));
    let spent = ok(store.mint(js("s"), js("worker"), object(&[("maxUses", num(0.0))])));
    let before_more = state(&store);
    fails(store.remint(bearer(&obs)), "ERR_INVALID_ARGUMENT");
    fails(store.remint(bearer(&spent)), "ERR_TOKEN_USES_EXHAUSTED");
    let mut elsewhere = store_like();
    let unknown = ok(elsewhere.mint(js("x"), js("worker"), undef()));
    fails(store.remint(bearer(&unknown)), "ERR_TOKEN_NOT_FOUND");
    fails(
        store.remint(js(&tamper(&bearer(&renewed).as_string().unwrap()))),
        "ERR_BAD_SIGNATURE",
    );
    fails(store.remint(js("garbage")), "ERR_MALFORMED_TOKEN");
    for value in [undef(), num(1.0), object(&[])] {
        fails(store.remint(value), "ERR_INVALID_ARGUMENT");
    }
    assert_eq!(state(&store), before_more);
    assert_ne!(before, before_more);
    ok(store.verify(bearer(&renewed), js("fetch_prompt"), js("root")));
}

#[wasm_bindgen_test]
fn purge_expired_follows_the_clock() {
    let mut store = moving_store("__captokenNowPurge");
    let op = ok(store.attach_operator(js("op"), object(&[("ttlSecs", num(1.0))])));
    let short = ok(store.mint(js("w"), js("worker"), object(&[("ttlSecs", num(10.0))])));
    let long = ok(store.mint(js("o"), js("observer"), object(&[("ttlSecs", num(100.0))])));
    assert_eq!(store.purge_expired(), 0);
    assert_eq!(store.size(), 3);

    set_time("__captokenNowPurge", T0 + 10);
    assert_eq!(store.purge_expired(), 1);
    assert_eq!(store.size(), 2);
    assert!(ok(store.record(js(&fp(&short)))).is_none());
    fails(
        store.verify(bearer(&short), js("fetch_data"), undef()),
        "ERR_TOKEN_EXPIRED",
    );

    set_time("__captokenNowPurge", T0 + 99);
    assert_eq!(store.purge_expired(), 0);
    ok(store.verify(bearer(&long), js("read_trace"), undef()));
    set_time("__captokenNowPurge", T0 + 1000);
    assert_eq!(store.purge_expired(), 1);
    assert_eq!(store.purge_expired(), 0);
    assert_eq!(store.size(), 1, "the operator token stays");
    ok(store.verify(bearer(&op), js("heartbeat"), undef()));
}

// ---- reading -----------------------------------------------------------------

#[wasm_bindgen_test]
fn record_and_task_lookups() {
    let mut store = store();
    let op = operator(&mut store);
    root(&mut store, &op, "root");
    assert!(ok(store.record(js(UNKNOWN_FP))).is_none());
    assert!(ok(store.task(js("nope"))).is_undefined());
    let task = ok(store.task(js("root")));
    assert_eq!(
        json(&task),
        "{\"taskId\":\"root\",\"parentId\":null,\"spawnDepth\":0}"
    );
    let record = ok(store.record(js(&fp(&op)))).unwrap();
    assert_eq!(get_str(&record.token(), "nonce"), "");
    assert_eq!(
        get_str(&record.token(), "sig_hex"),
        get_str(&get(&op, "token"), "sig_hex")
    );
    for value in [undef(), num(1.0), js("abc"), js(&UNKNOWN_FP.to_uppercase())] {
        fails(store.record(value), "ERR_INVALID_ARGUMENT");
    }
    for value in [undef(), num(1.0), js(""), js(&"t".repeat(70_000))] {
        fails(store.task(value), "ERR_INVALID_ARGUMENT");
    }
}

#[wasm_bindgen_test]
fn records_and_tasks_list_everything() {
    let mut store = store();
    let op = operator(&mut store);
    root(&mut store, &op, "b-root");
    root(&mut store, &op, "a-root");
    let w = ok(store.dispatch_attempt(bearer(&op), js("b-root"), object(&[("maxUses", num(4.0))])));
    ok(store.start_task(
        bearer(&op),
        object(&[("taskId", js("child")), ("parentId", js("b-root"))]),
    ));
    // The worker spends one use, as it did starting the child itself.
    ok(store.verify(bearer(&w), js("fetch_prompt"), js("b-root")));
    ok(store.mint(js("s"), js("senior"), undef()));
    ok(store.revoke(js(&fp(&op))));
    assert_eq!(store.size(), 3);

    let records = store.records();
    assert!(Array::is_array(&records));
    let records = Array::from(&records);
    assert_eq!(records.length(), 3);
    let mut fingerprints = Vec::new();
    for record in records.iter() {
        let fingerprint = get_str(&record, "fingerprint");
        assert_eq!(get_str(&get(&record, "token"), "nonce"), "");
        assert!(has(&record, "uses_left") && has(&record, "revoked") && has(&record, "task_id"));
        if fingerprint == fp(&w) {
            assert_eq!(get_f64(&record, "uses_left"), 3.0);
            assert_eq!(get_str(&record, "task_id"), "b-root");
        }
        if fingerprint == fp(&op) {
            assert!(get_bool(&record, "revoked"));
            assert!(get(&record, "task_id").is_null());
        }
        fingerprints.push(fingerprint);
    }
    let mut sorted = fingerprints.clone();
    sorted.sort();
    assert_eq!(fingerprints, sorted, "records are ordered by fingerprint");
    assert!(fingerprints.contains(&fp(&w)) && fingerprints.contains(&fp(&op)));

    let tasks = store.tasks();
    assert!(Array::is_array(&tasks));
    assert_eq!(
        json(&tasks),
        "[{\"taskId\":\"a-root\",\"parentId\":null,\"spawnDepth\":0},\
         {\"taskId\":\"b-root\",\"parentId\":null,\"spawnDepth\":0},\
         {\"taskId\":\"child\",\"parentId\":\"b-root\",\"spawnDepth\":1}]"
    );
    // The arrays are copies: changing them changes nothing.
    Array::from(&store.records()).set_length(0);
    assert_eq!(store.size(), 3);
}

#[wasm_bindgen_test]
fn snapshot_names_no_nonce() {
    let mut store = store();
    let op = operator(&mut store);
    root(&mut store, &op, "root");
    let w = ok(store.dispatch_attempt(bearer(&op), js("root"), undef()));
    let o = ok(store.mint(js("o"), js("observer"), undef()));
    let s = ok(store.mint(js("s"), js("senior"), undef()));
    let snapshot = store.snapshot().unwrap();
    assert!(!snapshot.contains("nonce"));
    for minted in [&op, &w, &o, &s] {
        assert!(!snapshot.contains(&nonce(minted)));
        assert!(snapshot.contains(&fp(minted)));
        assert!(!snapshot.contains(&bearer(minted).as_string().unwrap()));
    }
    assert!(!snapshot.contains("0707070707"), "the secret");
    let parsed = JSON::parse(&snapshot).unwrap();
    assert_eq!(get(&parsed, "version").as_f64(), Some(1.0));
    let mut roles: Vec<String> = Array::from(&get(&parsed, "records"))
        .iter()
        .map(|r| get_str(&get(&r, "token"), "role"))
        .collect();
    roles.sort();
    assert_eq!(roles, ["observer", "operator", "senior", "worker"]);
}

// ---- CapTokenRecord ------------------------------------------------------------

#[wasm_bindgen_test]
fn record_from_token_and_worker_token() {
    let mut store = store();
    let minted = ok(store.mint(js("w"), js("worker"), object(&[("maxUses", num(2.0))])));
    let token = get(&minted, "token");

    let record = ok(JsCapTokenRecord::from_token(token.clone()));
    assert_eq!(uses(&record), Some(2));
    assert!(!record.revoked());
    assert!(record.task_id().is_null());
    assert_eq!(record.fingerprint(), fp(&minted));
    let seen = record.token();
    assert_eq!(
        get_str(&seen, "nonce"),
        "",
        "a record never hands back a nonce"
    );
    for key in ["agent_id", "role", "sig_hex"] {
        assert_eq!(get_str(&seen, key), get_str(&token, key));
    }
    for key in ["issued_at", "expire_at", "max_uses", "v"] {
        assert_eq!(get_f64(&seen, key), get_f64(&token, key));
    }
    assert_eq!(json(&get(&seen, "scopes")), json(&get(&token, "scopes")));
    // The caller's object is not modified.
    assert_eq!(get_str(&token, "nonce"), nonce(&minted));

    let bound = ok(JsCapTokenRecord::from_worker_token(token.clone(), js("t1")));
    assert_eq!(bound.task_id(), js("t1"));
    assert_eq!(uses(&bound), Some(2));
    assert_eq!(bound.fingerprint(), fp(&minted));

    let op = ok(store.attach_operator(js("op"), undef()));
    let unlimited = ok(JsCapTokenRecord::from_token(get(&op, "token")));
    assert_eq!(uses(&unlimited), None);

    // Bad tokens.
    let no_nonce = record.token();
    let bad_tokens: Vec<(&str, JsValue)> = vec![
        ("undefined", undef()),
        ("null", JsValue::NULL),
        ("number", num(1.0)),
        ("bearer string", bearer(&minted)),
        ("JSON text", js(&json(&token))),
        ("empty object", object(&[])),
        ("no nonce", no_nonce),
        ("bad role", with(&token, "role", js("admin"))),
        (
            "uppercase nonce",
            with(&token, "nonce", js(&nonce(&minted).to_uppercase())),
        ),
        ("short sig", with(&token, "sig_hex", js("00"))),
        ("max_uses -1", with(&token, "max_uses", num(-1.0))),
        (
            "max_uses 2^32",
            with(&token, "max_uses", num(4_294_967_296.0)),
        ),
        ("issued_at 1.5", with(&token, "issued_at", num(1.5))),
        (
            "expire_at 2^53",
            with(&token, "expire_at", num(MAX_SAFE + 1.0)),
        ),
        ("expire_at string", with(&token, "expire_at", js("1"))),
        ("scopes string", with(&token, "scopes", js("*"))),
        ("agent_id missing", without(&token, "agent_id")),
        ("v 3", with(&token, "v", num(3.0))),
        ("extra field", with(&token, "extra", js("field"))),
        ("max_uses NaN", with_raw(&token, "max_uses", num(f64::NAN))),
        (
            "max_uses Infinity",
            with_raw(&token, "max_uses", num(f64::INFINITY)),
        ),
        (
            "max_uses boxed NaN",
            with_raw(&token, "max_uses", eval("new Number(NaN)")),
        ),
    ];
    for (what, bad) in bad_tokens {
        if let Ok(record) = JsCapTokenRecord::from_token(bad.clone()) {
            panic!("fromToken accepted {what}: {}", json(&record.to_json()));
        }
        fails(
            JsCapTokenRecord::from_token(bad.clone()),
            "ERR_INVALID_ARGUMENT",
        );
        fails(
            JsCapTokenRecord::from_worker_token(bad, js("t1")),
            "ERR_INVALID_ARGUMENT",
        );
    }
    for task in [
        undef(),
        JsValue::NULL,
        num(1.0),
        js(""),
        js(&"t".repeat(257)),
        js(&"t".repeat(70_000)),
    ] {
        fails(
            JsCapTokenRecord::from_worker_token(token.clone(), task),
            "ERR_INVALID_ARGUMENT",
        );
    }
}

/// A copy of `target` without `key`.
fn without(target: &JsValue, key: &str) -> JsValue {
    let copy = JSON::parse(&json(target)).unwrap();
    Reflect::delete_property(copy.unchecked_ref::<Object>(), &js(key)).unwrap();
    copy
}

/// A copy of `target` with `key` set to `value`.
fn with(target: &JsValue, key: &str, value: JsValue) -> JsValue {
    let copy = JSON::parse(&json(target)).unwrap();
    Reflect::set(&copy, &js(key), &value).unwrap();
    copy
}

#[wasm_bindgen_test]
fn record_consume_revoke_and_can_consume() {
    let mut store = store();
    let minted = ok(store.mint(js("w"), js("worker"), object(&[("maxUses", num(2.0))])));
    let mut record = ok(JsCapTokenRecord::from_worker_token(
        get(&minted, "token"),
        js("t"),
    ));
    assert!(record.can_consume());
    ok(record.consume());
    assert_eq!(uses(&record), Some(1));
    assert!(record.can_consume());
    ok(record.consume());
    assert_eq!(uses(&record), Some(0));
    assert!(!record.can_consume());
    let error = fails(record.consume(), "ERR_TOKEN_USES_EXHAUSTED");
    assert_eq!(get_str(&error, "fingerprint"), fp(&minted));
    assert!(!get_str(&error, "message").contains(&nonce(&minted)));
    assert_eq!(uses(&record), Some(0));
    record.revoke();
    assert!(record.revoked());
    let error = fails(record.consume(), "ERR_TOKEN_REVOKED");
    assert_eq!(get_str(&error, "fingerprint"), fp(&minted));

    // Revoked beats uses left; unlimited consumes forever.
    let op = ok(store.attach_operator(js("op"), undef()));
    let mut unlimited = ok(JsCapTokenRecord::from_token(get(&op, "token")));
    for _ in 0..100 {
        ok(unlimited.consume());
    }
    assert_eq!(uses(&unlimited), None);
    assert!(unlimited.can_consume());
    unlimited.revoke();
    unlimited.revoke();
    assert!(!unlimited.can_consume());
    fails(unlimited.consume(), "ERR_TOKEN_REVOKED");
    let mut fresh = ok(JsCapTokenRecord::from_token(get(&minted, "token")));
    fresh.revoke();
    assert!(!fresh.can_consume());
    fails(fresh.consume(), "ERR_TOKEN_REVOKED");
    assert_eq!(uses(&fresh), Some(2));

    // A record read from the store is a copy: consuming it spends nothing there.
    let mut copy = ok(store.record(js(&fp(&minted)))).unwrap();
    ok(copy.consume());
    copy.revoke();
    assert_eq!(uses_left(&store, &fp(&minted)), Some(2));
    assert!(!ok(store.record(js(&fp(&minted)))).unwrap().revoked());
}

#[wasm_bindgen_test]
fn record_to_json_and_from_json() {
    let mut store = store();
    let minted = ok(store.mint(js("w"), js("worker"), object(&[("maxUses", num(3.0))])));
    let token = get(&minted, "token");
    let mut record = ok(JsCapTokenRecord::from_worker_token(token.clone(), js("t1")));
    ok(record.consume());

    let shape = record.to_json();
    let keys: Vec<String> = Object::keys(shape.unchecked_ref::<Object>())
        .iter()
        .map(|k| k.as_string().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["token", "uses_left", "revoked", "task_id", "fingerprint"]
    );
    assert_eq!(get_f64(&shape, "uses_left"), 2.0);
    assert!(!get_bool(&shape, "revoked"));
    assert_eq!(get_str(&shape, "task_id"), "t1");
    assert_eq!(get_str(&shape, "fingerprint"), fp(&minted));
    assert_eq!(get_str(&get(&shape, "token"), "nonce"), "");

    // Object and string round trips.
    let back = ok(JsCapTokenRecord::from_json(shape.clone()));
    assert_eq!(json(&back.to_json()), json(&shape));
    let back = ok(JsCapTokenRecord::from_json(js(&json(&shape))));
    assert_eq!(json(&back.to_json()), json(&shape));
    assert_eq!(back.fingerprint(), fp(&minted));
    assert_eq!(uses(&back), Some(2));
    assert_eq!(back.task_id(), js("t1"));
    // Records from the store's list read back too.
    for listed in Array::from(&store.records()).iter() {
        let back = ok(JsCapTokenRecord::from_json(listed.clone()));
        assert_eq!(json(&back.to_json()), json(&listed));
    }

    // The seed's shape: the token with its nonce, no fingerprint, no task_id.
    let seed = object(&[
        ("token", token.clone()),
        ("uses_left", num(1.0)),
        ("revoked", JsValue::TRUE),
    ]);
    let from_seed = ok(JsCapTokenRecord::from_json(seed.clone()));
    assert_eq!(from_seed.fingerprint(), fp(&minted));
    assert!(from_seed.task_id().is_null());
    assert!(from_seed.revoked());
    assert_eq!(uses(&from_seed), Some(1));
    assert_eq!(get_str(&from_seed.token(), "nonce"), "");
    let seed_text = format!(
        "{{\"token\":{},\"uses_left\":null,\"revoked\":false,\"task_id\":null}}",
        json(&with(&token, "max_uses", JsValue::NULL)),
    );
    // (That token's signature no longer matches, which a record does not check.)
    let from_text = ok(JsCapTokenRecord::from_json(js(&seed_text)));
    assert_eq!(uses(&from_text), None);
    assert!(!json(&from_text.to_json()).contains(&nonce(&minted)));
    // The matching fingerprint given with the nonce is accepted.
    ok(JsCapTokenRecord::from_json(with(
        &seed,
        "fingerprint",
        js(&fp(&minted)),
    )));

    // Refusals.
    let op = ok(store.attach_operator(js("op"), undef()));
    let unlimited_shape = ok(JsCapTokenRecord::from_token(get(&op, "token"))).to_json();
    ok(JsCapTokenRecord::from_json(unlimited_shape.clone()));
    let bad: Vec<(&str, JsValue)> = vec![
        ("undefined", undef()),
        ("null", JsValue::NULL),
        ("number", num(1.0)),
        ("boolean", JsValue::TRUE),
        ("not json", js("not json")),
        ("empty text", js("")),
        ("huge text", js(&"x".repeat(70_000))),
        ("empty object", object(&[])),
        ("array", array(std::slice::from_ref(&shape))),
        (
            "mismatching fingerprint",
            with(&seed, "fingerprint", js(UNKNOWN_FP)),
        ),
        ("bad fingerprint", with(&shape, "fingerprint", js("abc"))),
        (
            "no nonce, no fingerprint",
            object(&[
                ("token", get(&shape, "token")),
                ("uses_left", num(1.0)),
                ("revoked", JsValue::FALSE),
            ]),
        ),
        (
            "uses_left above max_uses",
            with(&shape, "uses_left", num(4.0)),
        ),
        (
            "uses_left null with max_uses",
            with(&shape, "uses_left", JsValue::NULL),
        ),
        ("uses_left fractional", with(&shape, "uses_left", num(1.5))),
        ("uses_left negative", with(&shape, "uses_left", num(-1.0))),
        (
            "uses_left NaN",
            with_raw(&unlimited_shape, "uses_left", num(f64::NAN)),
        ),
        (
            "uses_left Infinity",
            with_raw(&unlimited_shape, "uses_left", num(f64::INFINITY)),
        ),
        ("task_id NaN", with_raw(&shape, "task_id", num(f64::NAN))),
        (
            "revoked missing",
            object(&[("token", token.clone()), ("uses_left", num(1.0))]),
        ),
        ("revoked string", with(&shape, "revoked", js("no"))),
        ("task_id empty", with(&shape, "task_id", js(""))),
        ("task_id number", with(&shape, "task_id", num(1.0))),
        (
            "token bad role",
            with(&seed, "token", with(&token, "role", js("admin"))),
        ),
        (
            "token bad nonce",
            with(&seed, "token", with(&token, "nonce", js("xyz"))),
        ),
        (
            "token missing",
            object(&[("uses_left", num(1.0)), ("revoked", JsValue::FALSE)]),
        ),
    ];
    for (what, value) in bad {
        let error = match JsCapTokenRecord::from_json(value) {
            Ok(_) => panic!("{what}: accepted"),
            Err(error) => error,
        };
        assert_cap_error(&error, "ERR_INVALID_ARGUMENT");
    }
    // The record is unchanged by all that.
    assert_eq!(json(&record.to_json()), json(&shape));
    record.revoke();
    assert!(get_bool(&record.to_json(), "revoked"));
}

// ---- errors ---------------------------------------------------------------------

#[wasm_bindgen_test]
fn error_class_registration() {
    let mut store = store();
    let op = operator(&mut store);
    let instance_of = Function::new_with_args("e, c", "return e instanceof c;");
    let is = |error: &JsValue, class: &JsValue| {
        instance_of
            .call2(&JsValue::UNDEFINED, error, class)
            .unwrap()
            .as_bool()
            .unwrap()
    };

    // A class that cannot be constructed: a plain Error with the same fields.
    let broken = eval("(class Broken { constructor() { throw new Error('no'); } })");
    register_error_class(broken.clone());
    let error = fails(
        store.verify(js("garbage"), js("fetch_data"), undef()),
        "ERR_MALFORMED_TOKEN",
    );
    assert!(!is(&error, &broken));
    assert!(is(&error, &eval("Error")));
    register_error_class(eval("(() => {})"));
    let error = fails(store.revoke(num(1.0)), "ERR_INVALID_ARGUMENT");
    assert_eq!(get_str(&error, "name"), "CapTokenError");

    // The package's class.
    let class = eval(
        "(class CapTokenError extends Error {
            constructor(message, details) {
                super(message);
                Object.defineProperty(this, 'name', { value: 'CapTokenError', configurable: true, writable: true });
                for (const key of Object.keys(details ?? {})) {
                    Object.defineProperty(this, key, { value: details[key], enumerable: true });
                }
            }
        })",
    );
    register_error_class(class.clone());
    let error = fails(
        store.verify(js("garbage"), js("fetch_data"), undef()),
        "ERR_MALFORMED_TOKEN",
    );
    assert!(is(&error, &class));
    assert!(is(&error, &eval("Error")));

    // Registering something that is not a function changes nothing.
    for not_a_class in [
        undef(),
        JsValue::NULL,
        num(1.0),
        js("CapTokenError"),
        object(&[]),
    ] {
        register_error_class(not_a_class);
    }

    // Every kind of thrown error is an instance, with its details.
    root(&mut store, &op, "root");
    let w = ok(store.dispatch_attempt(bearer(&op), js("root"), object(&[("maxUses", num(1.0))])));
    let errors = vec![
        fails(JsTokenStore::new(undef()), "ERR_INVALID_ARGUMENT"),
        fails(
            JsTokenStore::restore(js("{"), options_with(&[]), undef()),
            "ERR_SNAPSHOT_INVALID",
        ),
        fails(
            store.verify(bearer(&w), js("fetch_prompt"), js("x")),
            "ERR_TOKEN_TASK_MISMATCH",
        ),
        fails(
            store.verify(bearer(&w), js("read_trace"), undef()),
            "ERR_ROLE_VIOLATION",
        ),
        fails(
            store.dispatch_attempt(bearer(&op), js("nope"), undef()),
            "ERR_TASK_NOT_FOUND",
        ),
        fails(
            JsCapTokenRecord::from_json(num(1.0)),
            "ERR_INVALID_ARGUMENT",
        ),
    ];
    for error in &errors {
        assert!(is(error, &class), "{}", describe(error));
    }
    assert_eq!(get_str(&errors[2], "bound"), "root");
    assert_eq!(get_str(&errors[2], "arg"), "x");
    assert_eq!(get_str(&errors[2], "fingerprint"), fp(&w));
    assert_eq!(get_str(&errors[3], "verb"), "read_trace");
    ok(store.verify(bearer(&w), js("fetch_prompt"), js("root")));
    let mut record = ok(store.record(js(&fp(&w)))).unwrap();
    let error = fails(record.consume(), "ERR_TOKEN_USES_EXHAUSTED");
    assert!(is(&error, &class));
    // Each worker spawns a child (its id made by the store), down to the cap.
    let mut worker =
        ok(store.dispatch_attempt(bearer(&op), js("root"), object(&[("maxUses", num(5.0))])));
    for _ in 0..3 {
        let child = ok(store.start_task(bearer(&worker), undef()));
        worker = ok(store.dispatch_attempt(bearer(&op), get(&child, "taskId"), undef()));
    }
    let w5 = worker;
    let error = fails(
        store.start_task(bearer(&w5), undef()),
        "ERR_SPAWN_DEPTH_EXCEEDED",
    );
    assert!(is(&error, &class));
    assert_eq!(get_f64(&error, "current"), 4.0);
    assert_eq!(get_f64(&error, "max"), 4.0);
    // The class stays registered for the rest of the module (its errors have
    // the same name and fields as the fallback, so other tests are unaffected).
}

// ---- through the generated JavaScript glue -------------------------------------

/// Calls `target[method](...args)`, as JavaScript would.
fn call(target: &JsValue, method: &str, args: &[JsValue]) -> Result<JsValue, JsValue> {
    let function: Function = get(target, method)
        .dyn_into()
        .unwrap_or_else(|_| panic!("{method} is not a function"));
    Reflect::apply(&function, target, &args.iter().collect::<Array>())
}

#[wasm_bindgen_test]
fn glue_classes_behave_like_the_api() {
    let store: JsValue = store().into();
    let constructor = get(&store, "constructor");
    assert_eq!(get_str(&constructor, "name"), "TokenStore");
    assert_eq!(get(&store, "size").as_f64(), Some(0.0));
    let op = ok(call(&store, "attachOperator", &[js("op")]));
    ok(call(
        &store,
        "startTask",
        &[bearer(&op), object(&[("taskId", js("root"))])],
    ));
    let w = ok(call(&store, "dispatchAttempt", &[bearer(&op), js("root")]));
    let grant = ok(call(
        &store,
        "verify",
        &[bearer(&w), js("fetch_prompt"), js("root")],
    ));
    assert_eq!(get_str(&grant, "taskId"), "root");
    let decision = ok(call(&store, "check", &[]));
    assert_denied(&decision, "ERR_INVALID_ARGUMENT");
    let error = fails(call(&store, "verify", &[]), "ERR_INVALID_ARGUMENT");
    assert!(error.is_instance_of::<js_sys::Error>());
    fails(call(&constructor, "restore", &[]), "ERR_INVALID_ARGUMENT");
    assert_eq!(get(&store, "size").as_f64(), Some(2.0));

    // Static constructors and the record class.
    let record = ok(call(&store, "record", &[js(&fp(&w))]));
    let record_class = get(&record, "constructor");
    assert_eq!(get_str(&record_class, "name"), "CapTokenRecord");
    assert!(get(&record, "usesLeft").is_null());
    assert_eq!(get(&record, "taskId"), js("root"));
    assert_eq!(get_str(&record, "fingerprint"), fp(&w));
    assert_eq!(get_str(&get(&record, "token"), "nonce"), "");
    // JSON.stringify uses toJSON.
    let text = json(&record);
    assert!(text.contains("\"uses_left\":null") && !text.contains(&nonce(&w)));
    let back = ok(call(&record_class, "fromJSON", &[js(&text)]));
    // A record object itself is read through its toJSON.
    let again = ok(call(
        &record_class,
        "fromJSON",
        std::slice::from_ref(&record),
    ));
    assert_eq!(json(&again), text);
    assert_eq!(json(&back), text);
    ok(call(&record_class, "fromToken", &[get(&w, "token")]));
    fails(
        call(&record_class, "fromWorkerToken", &[get(&w, "token")]),
        "ERR_INVALID_ARGUMENT",
    );
    assert!(ok(call(&store, "record", &[js(UNKNOWN_FP)])).is_undefined());
    ok(call(&record, "free", &[]));
    ok(call(&back, "free", &[]));

    // The store still works, then is freed.
    let snapshot = ok(call(&store, "snapshot", &[])).as_string().unwrap();
    let restored = ok(call(
        &constructor,
        "restore",
        &[js(&snapshot), options_with(&[])],
    ));
    assert_eq!(get(&restored, "size").as_f64(), Some(2.0));
    assert_eq!(ok(call(&restored, "takeJournal", &[])), js(""));
    ok(call(&store, "free", &[]));
    ok(call(&restored, "free", &[]));
}

/// An object whose every property read throws.
const THROWING_PROXY: &str = "new Proxy({}, { get() { throw new Error('trap'); } })";
/// A revoked Proxy: `Array.isArray`, `Object.keys` and every read throw.
const REVOKED_PROXY: &str =
    "(() => { const p = Proxy.revocable({}, {}); p.revoke(); return p.proxy; })()";

// Options objects whose reading runs caller code (throwing getters, Proxies,
// lying arrays, fake Uint8Arrays) are copied into plain data by the package
// entry (js/args.js) before the module sees them, so they are tested through
// the entry: tests/node/hostile-options.test.js.

#[wasm_bindgen_test]
fn glue_store_survives_a_reentrant_clock() {
    // A `now` callback that calls back into the store while the store is
    // busy: the inner call is refused, the clock reads as failed (far future,
    // so minting is refused), and the store is not left borrowed.
    let now = Function::new_no_args("return globalThis.__captokenReentrant.size;");
    let store: JsValue = new_store(options_with(&[("now", now.into())])).into();
    Reflect::set(&js_sys::global(), &js("__captokenReentrant"), &store).unwrap();
    fails(
        call(&store, "attachOperator", &[js("op")]),
        "ERR_INVALID_ARGUMENT",
    );
    assert_eq!(get(&store, "size").as_f64(), Some(0.0));
    let decision = ok(call(&store, "check", &[js("garbage"), js("heartbeat")]));
    assert_denied(&decision, "ERR_MALFORMED_TOKEN");
    Reflect::set(
        &js_sys::global(),
        &js("__captokenReentrant"),
        &object(&[("size", num(T0 as f64))]),
    )
    .unwrap();
    let op = ok(call(&store, "attachOperator", &[js("op")]));
    assert_eq!(get_f64(&get(&op, "token"), "issued_at"), T0 as f64);
    ok(call(&store, "free", &[]));
}

#[wasm_bindgen_test]
fn hostile_objects_in_constructors_and_records() {
    // Token and record objects are read by a caught JSON.stringify: a
    // CapTokenError, never a raw TypeError.
    let mut store = store();
    let minted = ok(store.mint(js("w"), js("worker"), undef()));
    let token = get(&minted, "token");
    let shape = ok(JsCapTokenRecord::from_token(token.clone())).to_json();
    let cyclic = with(&token, "agent_id", js("x"));
    Reflect::set(&cyclic, &js("self"), &cyclic).unwrap();
    let bad: Vec<(&str, JsValue)> = vec![
        ("throwing proxy", eval(THROWING_PROXY)),
        ("revoked proxy", eval(REVOKED_PROXY)),
        (
            "bigint field",
            with(&token, "issued_at", eval("1764150000n")),
        ),
        ("cycle", cyclic),
        (
            "getter throws",
            eval("({ agent_id: 'a', get role() { throw new Error('trap'); } })"),
        ),
    ];
    for (what, value) in &bad {
        for (call_name, result) in [
            (
                "fromToken",
                JsCapTokenRecord::from_token(value.clone()).map(|_| ()),
            ),
            (
                "fromWorkerToken",
                JsCapTokenRecord::from_worker_token(value.clone(), js("t")).map(|_| ()),
            ),
            (
                "fromJSON",
                JsCapTokenRecord::from_json(value.clone()).map(|_| ()),
            ),
            (
                "fromJSON record",
                JsCapTokenRecord::from_json(with_raw(&shape, "token", value.clone())).map(|_| ()),
            ),
        ] {
            let error = match result {
                Ok(()) => panic!("{call_name} with {what}: accepted"),
                Err(error) => error,
            };
            if get(&error, "code").as_string().as_deref() != Some("ERR_INVALID_ARGUMENT") {
                panic!("{call_name} with {what}: threw {}", describe(&error));
            }
        }
    }
    // Everything still works.
    ok(store.verify(bearer(&minted), js("fetch_data"), undef()));
    ok(JsCapTokenRecord::from_token(token));
    ok(JsCapTokenRecord::from_json(shape));
}

/// A shallow copy of `target` with `key` set to `value` (no JSON round trip).
fn with_raw(target: &JsValue, key: &str, value: JsValue) -> JsValue {
    let copy: JsValue = Object::assign(&Object::new(), target.unchecked_ref()).into();
    Reflect::set(&copy, &js(key), &value).unwrap();
    copy
}
