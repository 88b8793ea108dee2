//! filegate patch: writes `xmltree` elements straight into a byte buffer.
//!
//! The PROPFIND multistatus writer used xml-rs's `EventWriter` for every element of every
//! response; over a folder of 10 000 entries that namespace-stack bookkeeping and the
//! per-event allocations were most of the request's time. This writer produces the same
//! text `ElementExt::write_ev` does (with `perform_indent: false` and
//! `normalize_empty_elements: false`): the element's own namespace declarations except the
//! predefined `xml`/`xmlns` prefixes and an empty default namespace, attributes, children.

use xmltree::{Element, XMLNode};

/// Appends `e` (and its subtree) to `out` as XML text, inside a `D:multistatus` that binds
/// `D` to `DAV:`.
pub(crate) fn write_element(out: &mut Vec<u8>, e: &Element) {
    let mut scope = vec![("D".to_owned(), "DAV:".to_owned())];
    write_scoped(out, e, &mut scope);
}

/// Like the EventWriter, declares only the bindings not already in scope.
fn write_scoped(out: &mut Vec<u8>, e: &Element, scope: &mut Vec<(String, String)>) {
    let outer = scope.len();
    out.push(b'<');
    write_name(out, e);
    if let Some(namespaces) = &e.namespaces {
        for (prefix, uri) in namespaces {
            let bound = scope.iter().rev().find(|(p, _)| p == prefix).map(|(_, u)| u.as_str());
            let declare = match prefix {
                "xml" | "xmlns" => false,
                "" => bound.unwrap_or("") != uri,
                _ => bound != Some(uri),
            };
            if !declare {
                continue;
            }
            if prefix.is_empty() {
                out.extend_from_slice(b" xmlns=\"");
            } else {
                out.extend_from_slice(b" xmlns:");
                out.extend_from_slice(prefix.as_bytes());
                out.extend_from_slice(b"=\"");
            }
            escape_attribute(out, uri);
            out.push(b'"');
            scope.push((prefix.to_owned(), uri.to_owned()));
        }
    }
    for (name, value) in &e.attributes {
        out.push(b' ');
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"=\"");
        escape_attribute(out, value);
        out.push(b'"');
    }
    out.push(b'>');
    for node in &e.children {
        match node {
            XMLNode::Element(child) => write_scoped(out, child, scope),
            XMLNode::Text(text) => escape_text(out, text),
            XMLNode::Comment(comment) => {
                // The EventWriter pads comments (`autopad_comments`).
                out.extend_from_slice(b"<!--");
                if !comment.starts_with(char::is_whitespace) {
                    out.push(b' ');
                }
                out.extend_from_slice(comment.as_bytes());
                if !comment.ends_with(char::is_whitespace) {
                    out.push(b' ');
                }
                out.extend_from_slice(b"-->");
            }
            XMLNode::CData(data) => {
                out.extend_from_slice(b"<![CDATA[");
                out.extend_from_slice(data.as_bytes());
                out.extend_from_slice(b"]]>");
            }
            XMLNode::ProcessingInstruction(name, data) => {
                out.extend_from_slice(b"<?");
                out.extend_from_slice(name.as_bytes());
                if let Some(data) = data {
                    out.push(b' ');
                    out.extend_from_slice(data.as_bytes());
                }
                out.extend_from_slice(b"?>");
            }
        }
    }
    out.extend_from_slice(b"</");
    write_name(out, e);
    out.push(b'>');
    scope.truncate(outer);
}

/// Appends `<prefix:name>text</prefix:name>` (text escaped).
pub(crate) fn write_text_element(out: &mut Vec<u8>, qname: &str, text: &str) {
    out.push(b'<');
    out.extend_from_slice(qname.as_bytes());
    out.push(b'>');
    escape_text(out, text);
    out.extend_from_slice(b"</");
    out.extend_from_slice(qname.as_bytes());
    out.push(b'>');
}

fn write_name(out: &mut Vec<u8>, e: &Element) {
    if let Some(prefix) = &e.prefix {
        out.extend_from_slice(prefix.as_bytes());
        out.push(b':');
    }
    out.extend_from_slice(e.name.as_bytes());
}

fn escape_text(out: &mut Vec<u8>, text: &str) {
    escape(out, text, |b| match b {
        b'<' => Some(b"&lt;"),
        b'>' => Some(b"&gt;"),
        b'&' => Some(b"&amp;"),
        _ => None,
    });
}

fn escape_attribute(out: &mut Vec<u8>, text: &str) {
    escape(out, text, |b| match b {
        b'<' => Some(b"&lt;"),
        b'>' => Some(b"&gt;"),
        b'&' => Some(b"&amp;"),
        b'"' => Some(b"&quot;"),
        b'\'' => Some(b"&apos;"),
        b'\n' => Some(b"&#xA;"),
        b'\r' => Some(b"&#xD;"),
        b'\t' => Some(b"&#x9;"),
        _ => None,
    });
}

/// Copies `text`, replacing the bytes `entity` names; runs without one are copied whole.
fn escape(out: &mut Vec<u8>, text: &str, entity: impl Fn(u8) -> Option<&'static [u8]>) {
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if let Some(replacement) = entity(b) {
            out.extend_from_slice(&bytes[start..i]);
            out.extend_from_slice(replacement);
            start = i + 1;
        }
    }
    out.extend_from_slice(&bytes[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xmltree_ext::ElementExt;

    fn via_event_writer(e: &Element) -> String {
        let mut emitter = xml::writer::EventWriter::new_with_config(
            Vec::new(),
            xml::EmitterConfig {
                normalize_empty_elements: false,
                perform_indent: false,
                write_document_declaration: false,
                ..Default::default()
            },
        );
        e.write_ev(&mut emitter).unwrap();
        String::from_utf8(emitter.into_inner()).unwrap()
    }

    fn raw(e: &Element) -> String {
        let mut out = Vec::new();
        write_element(&mut out, e);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn matches_the_event_writer_on_parsed_dead_properties() {
        for xml in [
            r#"<foo xmlns="http://example.com/neon/litmus/">bar &amp; &lt;baz&gt;</foo>"#,
            r#"<R:x xmlns:R="urn:r" a="1 &quot;q&quot;"><R:y>t</R:y><R:z/></R:x>"#,
            r#"<a:high-unicode xmlns:a="http://x/">&#x10000;é</a:high-unicode>"#,
            r#"<R:x xmlns:R="urn:r"><R:y xmlns:R="urn:other"><R:z/></R:y><R:w/></R:x>"#,
            r#"<x xmlns="urn:d"><y xmlns=""><z/></y><!--c--><![CDATA[<raw>]]></x>"#,
        ] {
            let e = Element::parse(xml.as_bytes()).unwrap();
            assert_eq!(raw(&e), via_event_writer(&e), "{xml}");
        }
    }

    #[test]
    fn matches_the_event_writer_on_built_elements() {
        let mut e = Element::new2("D:resourcetype");
        e.push_element(Element::new2("D:collection"));
        let t = Element::new2("D:getlastmodified").text("Mon, 01 Jan 2024 <x> & y");
        assert_eq!(raw(&e), "<D:resourcetype><D:collection></D:collection></D:resourcetype>");
        assert_eq!(raw(&t), "<D:getlastmodified>Mon, 01 Jan 2024 &lt;x&gt; &amp; y</D:getlastmodified>");
        let mut out = Vec::new();
        write_text_element(&mut out, "D:href", "/a&b/");
        assert_eq!(out, b"<D:href>/a&amp;b/</D:href>");
    }
}
