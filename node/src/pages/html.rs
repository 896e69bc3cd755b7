//! Writing HTML safely: every text and attribute value a page shows passes through
//! [`escape`] (which is XML's escaping too: the Atom feed and the sitemap use it), and
//! JSON-LD through [`json_ld`].

/// `text` with the five characters that mean something in HTML text or in a quoted
/// attribute value replaced by their character references.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// A `<script type="application/ld+json">` element holding `value`. Inside a script
/// element HTML references are not decoded, so the characters that could end it or open
/// a comment (`</script>`, `<!--`) are written as JSON escapes (`\u003c`), which JSON
/// parsers read back as the same text.
pub fn json_ld(value: &serde_json::Value) -> String {
    let json = value.to_string();
    let mut out = String::with_capacity(json.len() + 64);
    out.push_str(r#"<script type="application/ld+json">"#);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.push_str("</script>");
    out
}

/// The first `max` characters of `text` on a word boundary, with "…" when cut: meta
/// descriptions and list summaries.
pub fn excerpt(text: &str, max: usize) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.chars().count() <= max {
        return text;
    }
    let cut: String = text.chars().take(max).collect();
    let end = cut.rfind(' ').filter(|i| *i > max / 2).unwrap_or(cut.len());
    format!("{}…", cut[..end].trim_end_matches([',', '.', ';', ':']))
}

/// A query string (`?a=1&b=2`) from pairs, encoded; empty without pairs.
pub fn query(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let mut out = String::from("?");
    let mut encoder = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        encoder.append_pair(k, v);
    }
    out.push_str(&encoder.finish());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_cannot_open_tags_or_leave_attributes() {
        assert_eq!(
            escape(r#"<a href="x" onclick='y'>&"#),
            "&lt;a href=&quot;x&quot; onclick=&apos;y&apos;&gt;&amp;"
        );
    }

    #[test]
    fn json_ld_cannot_end_its_script_and_reads_back_the_same() {
        let value =
            serde_json::json!({ "name": "</script><script>alert(1)</script><!-- & \u{2028}" });
        let html = json_ld(&value);
        let inner = html
            .strip_prefix(r#"<script type="application/ld+json">"#)
            .and_then(|s| s.strip_suffix("</script>"))
            .unwrap();
        assert!(!inner.contains('<') && !inner.contains('>'));
        let back: serde_json::Value = serde_json::from_str(inner).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn excerpts_end_on_a_word() {
        assert_eq!(excerpt("short text", 20), "short text");
        assert_eq!(excerpt("one two three four five", 12), "one two…");
    }
}
