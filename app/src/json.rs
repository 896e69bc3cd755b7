//! Reading JSON with the browser's own parser (`JSON.parse`): the app then carries no JSON
//! parser of its own (its size budget is tight), and reads what it needs field by field.
//! A missing or mistyped field reads as absent.

use ibis_shared::model::record::{PracticeRecord, RecordLink};
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

/// A practice record (what the node's API and the app's stored summaries hold), field
/// by field: a derived `Deserialize` for a record of thirty-odd fields would cost the app
/// a good part of its size budget.
pub fn practice_record(r: &Json) -> PracticeRecord {
    let text = |key: &str| r.string(key);
    let texts =
        |key: &str| -> Vec<String> { r.get(key).items().iter().filter_map(Json::text).collect() };
    let numbers = |key: &str| -> Vec<u8> {
        let items = r.get(key).items();
        items
            .iter()
            .filter_map(|n| Some(n.number()? as u8))
            .collect()
    };
    let int = |key: &str| r.get(key).number().unwrap_or_default() as i64;
    PracticeRecord {
        id: r.get("id").text(),
        title: text("title"),
        summary: text("summary"),
        context: text("context"),
        process: text("process"),
        outcomes: text("outcomes"),
        transferability: text("transferability"),
        funding: text("funding"),
        city: text("city"),
        country: text("country"),
        latitude: r.get("latitude").number(),
        longitude: r.get("longitude").number(),
        lead_organization: text("lead_organization"),
        partners: texts("partners"),
        themes: texts("themes"),
        gcm_objectives: numbers("gcm_objectives"),
        sdg_goals: numbers("sdg_goals"),
        target_groups: texts("target_groups"),
        actor_level: text("actor_level"),
        start_date: text("start_date"),
        end_date: text("end_date"),
        evidence_level: text("evidence_level"),
        replicated_by: texts("replicated_by"),
        contact_name: text("contact_name"),
        contact_role: text("contact_role"),
        contact_email: text("contact_email"),
        contact_phone: text("contact_phone"),
        contact_consent: r.get("contact_consent").flag().unwrap_or_default(),
        resources: r
            .get("resources")
            .items()
            .iter()
            .map(|l| RecordLink {
                title: l.string("title"),
                url: l.string("url"),
            })
            .collect(),
        language: text("language"),
        review_state: text("review_state"),
        home_organization: text("home_organization"),
        created_by: text("created_by"),
        created_at: int("created_at"),
        updated_by: text("updated_by"),
        updated_at: int("updated_at"),
    }
}
