//! The JS host the engine runs in: the functions it imports, the one callback type it exports, and
//! small helpers for reading and writing browser objects.

use js_sys::Reflect;
use wasm_bindgen::prelude::*;

/// Every callback the engine hands to JS has this one type, so the glue for closures exists once.
pub type Callback = Closure<dyn FnMut(JsValue)>;

#[wasm_bindgen]
extern "C" {
    /// The JS side: receives every event this engine produces.
    pub type Host;
    /// `frame`: for channel events, the whole frame as the server sent it (Chorus's `position`
    /// and `recovery` ride there; the wrapper keeps the history positions).
    #[wasm_bindgen(method)]
    pub fn emit(
        this: &Host,
        channel: Option<String>,
        event: &str,
        data: &JsValue,
        extra: &JsValue,
        frame: &JsValue,
    );
    /// The newest history position the wrapper holds for `channel` (`{epoch, offset}`, else
    /// `undefined`), sent as `recover` when subscribing again.
    #[wasm_bindgen(method)]
    pub fn position(this: &Host, channel: &str) -> JsValue;
    /// POSTs a form (`body`) to an auth endpoint with the app's `headers`, then calls
    /// `Client::answer(tag, value)` with the parsed JSON answer, or with the HTTP status (a number;
    /// 0 if the request failed).
    #[wasm_bindgen(method)]
    pub fn post(this: &Host, url: &str, headers: &JsValue, body: &str, tag: u32);

    /// `setTimeout(f, ms, arg)`: calls `f(arg)`; returns a handle (a number in browsers, an object
    /// in Node).
    #[wasm_bindgen(js_name = setTimeout)]
    pub fn set_timeout(f: &Callback, ms: f64, arg: u32) -> JsValue;
    #[wasm_bindgen(js_name = clearTimeout)]
    pub fn clear_timeout(handle: &JsValue);

    /// JS `String(v)`: number to text without Rust's formatting machinery.
    #[wasm_bindgen(js_name = String)]
    pub fn js_string(v: &JsValue) -> String;

    /// `globalThis.addEventListener`: absent in Node, hence `catch`.
    #[wasm_bindgen(js_namespace = globalThis, js_name = addEventListener, catch)]
    pub fn add_global_listener(kind: &str, f: &Callback) -> Result<(), JsValue>;
}

pub fn js_str(v: &str) -> JsValue {
    JsValue::from_str(v)
}

pub fn get(obj: &JsValue, key: &str) -> JsValue {
    Reflect::get(obj, &js_str(key)).unwrap_or(JsValue::UNDEFINED)
}

pub fn set(obj: &JsValue, key: &str, val: &JsValue) {
    let _ = Reflect::set(obj, &js_str(key), val);
}

/// Joins text without `format!` (whose machinery would add kilobytes to the wasm).
pub fn concat(parts: &[&str]) -> String {
    let mut out = String::new();
    for p in parts {
        out.push_str(p);
    }
    out
}

/// A number option, `default` when absent or not a number.
pub fn num(opts: &JsValue, key: &str, default: f64) -> f64 {
    get(opts, key).as_f64().unwrap_or(default)
}

/// A text option, `default` when absent or not a string.
pub fn text(opts: &JsValue, key: &str, default: &str) -> String {
    get(opts, key)
        .as_string()
        .unwrap_or_else(|| default.to_owned())
}

#[cfg(test)]
mod tests {
    use super::concat;

    #[test]
    fn concat_joins_in_order() {
        assert_eq!(concat(&[]), "");
        assert_eq!(concat(&["socket_id=", "1.2", "&x"]), "socket_id=1.2&x");
    }
}
