//! Reading JSON with the browser's own parser (`JSON.parse`): the app then carries no JSON
//! parser of its own (its size budget is tight), and reads what it needs field by field.
//! A missing or mistyped field reads as absent.

use js_sys::{Array, Reflect};
use wasm_bindgen::JsValue;

/// A JSON value, parsed by the browser.
pub struct Json(JsValue);

impl Json {
    pub fn parse(text: &str) -> Option<Self> {
        js_sys::JSON::parse(text).ok().map(Json)
    }

    /// A field of an object (absent if there is none).
    pub fn get(&self, key: &str) -> Json {
        let value = if self.0.is_object() {
            Reflect::get(&self.0, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
        } else {
            JsValue::UNDEFINED
        };
        Json(value)
    }

    pub fn text(&self) -> Option<String> {
        self.0.as_string()
    }

    /// A text field's value, or empty.
    pub fn string(&self, key: &str) -> String {
        self.get(key).text().unwrap_or_default()
    }

    pub fn number(&self) -> Option<f64> {
        self.0.as_f64()
    }

    pub fn flag(&self) -> Option<bool> {
        self.0.as_bool()
    }

    /// An array's items (none if it is not an array).
    pub fn items(&self) -> Vec<Json> {
        if Array::is_array(&self.0) {
            Array::from(&self.0).iter().map(Json).collect()
        } else {
            Vec::new()
        }
    }
}
