//! The app's language: remembered in localStorage, defaulting to the browser's. The
//! strings themselves are shared with the node's pages (`ibis_shared::i18n`).

pub use ibis_shared::i18n::{tr, Lang};

const STORAGE_KEY: &str = "ibis.lang";

/// The address's language (`?lang=`, as the node's pages write it), or the remembered
/// one, or the browser's, or English.
pub fn initial_lang() -> Lang {
    let window = web_sys::window();
    let in_address = crate::ui::address_params()
        .into_iter()
        .find(|(k, _)| k == "lang")
        .and_then(|(_, code)| Lang::from_code(&code));
    if let Some(lang) = in_address {
        return lang;
    }
    let stored = window
        .as_ref()
        .and_then(|w| w.local_storage().ok().flatten())
        .and_then(|s| s.get_item(STORAGE_KEY).ok().flatten())
        .and_then(|code| Lang::from_code(&code));
    stored
        .or_else(|| {
            window
                .and_then(|w| w.navigator().language())
                .and_then(|code| Lang::from_code(&code))
        })
        .unwrap_or_default()
}

pub fn remember(lang: Lang) {
    if let Some(storage) = web_sys::window().and_then(|w| w.local_storage().ok().flatten()) {
        let _ = storage.set_item(STORAGE_KEY, lang.code());
    }
}
