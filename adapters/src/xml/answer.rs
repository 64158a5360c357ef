//! Reading what an XML partner answers, as pure functions of the bytes: the
//! document (roxmltree; a DTD is refused, size and depth are capped), the
//! SOAP envelope, and the answer's values at the mapping's paths, each error
//! with the path of the element at fault. The fuzz target calls these.

use passerelle_domain::money::minor_unit_digits;
use passerelle_domain::{Reason, ReasonCode};

use super::{AnswerPaths, NumberFormat};
use crate::AdapterError;
use crate::decimal::parse_minor;

// ---------------------------------------------------------------- documents

/// A parsed XML element: local name, attributes, text and children.
#[derive(Clone, Debug, Default)]
pub struct Node {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub text: String,
    pub children: Vec<Node>,
}

/// Parses a document with the caps: roxmltree reads it (well-formedness,
/// entity and character references, CDATA, namespaces) and refuses a DTD;
/// the tree kept is local names, attributes, direct text and child elements.
pub fn parse_xml(bytes: &[u8], max_bytes: usize, max_depth: usize) -> Result<Node, String> {
    if bytes.len() > max_bytes {
        return Err(format!(
            "document of {} bytes, more than the {max_bytes} accepted",
            bytes.len()
        ));
    }
    let decoded = decode(bytes)?;
    let text = decoded.strip_prefix('\u{feff}').unwrap_or(&decoded);
    let options = roxmltree::ParsingOptions {
        allow_dtd: false,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(text, options).map_err(|e| match e {
        roxmltree::Error::DtdDetected => "DOCTYPE is not accepted".to_string(),
        e => e.to_string(),
    })?;
    element(doc.root_element(), max_depth, &mut Vec::new())
}

/// A document's text: UTF-8 when its bytes are (whatever its declaration
/// says: many systems declare ISO-8859-1 and write UTF-8; a UTF-8 byte
/// order mark is dropped), else the single-byte encoding its XML
/// declaration names (ISO-8859-1, ISO-8859-15, Windows-1252: what older
/// Windows systems write; labels as the WHATWG Encoding Standard reads
/// them, so ISO-8859-1 is read as Windows-1252, its superset, where every
/// byte is a character). Bytes that are not UTF-8 under no such
/// declaration, or under another encoding's, are refused, naming it. The
/// XML reader takes UTF-8 only and refuses a declaration of another
/// encoding: a text read is declared as what it now is.
fn decode(bytes: &[u8]) -> Result<std::borrow::Cow<'_, str>, String> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let declared = declared_encoding(bytes);
    let other = declared
        .as_deref()
        .is_some_and(|l| !l.eq_ignore_ascii_case("utf-8") && !l.eq_ignore_ascii_case("utf8"));
    let not_utf8 = match std::str::from_utf8(bytes) {
        Ok(text) if other => return Ok(std::borrow::Cow::Owned(redeclared(text))),
        Ok(text) => return Ok(std::borrow::Cow::Borrowed(text)),
        Err(e) => e,
    };
    let Some(label) = declared else {
        return Err(format!("not UTF-8: {not_utf8}"));
    };
    let encoding = encoding_rs::Encoding::for_label(label.as_bytes())
        .filter(|e| *e == encoding_rs::WINDOWS_1252 || *e == encoding_rs::ISO_8859_15)
        .ok_or_else(|| {
            format!(
                "not UTF-8 ({not_utf8}), and encoding {label:?} is not read (UTF-8, ISO-8859-1, ISO-8859-15, Windows-1252 are)"
            )
        })?;
    let (text, _) = encoding.decode_without_bom_handling(bytes);
    Ok(std::borrow::Cow::Owned(redeclared(&text)))
}

/// The `encoding` an XML declaration at the start of the bytes names.
fn declared_encoding(bytes: &[u8]) -> Option<String> {
    let head = bytes.strip_prefix(b"<?xml")?;
    let end = head.windows(2).position(|w| w == b"?>")?.min(200);
    let decl = std::str::from_utf8(&head[..end]).ok()?;
    let at = decl.find("encoding")?;
    let rest = decl[at + "encoding".len()..]
        .trim_start()
        .strip_prefix('=')?
        .trim_start();
    let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let value = &rest[1..];
    Some(value[..value.find(quote)?].trim().to_string())
}

/// A decoded document whose declaration says UTF-8, as its text now is.
fn redeclared(text: &str) -> String {
    match (text.find("<?xml"), text.find("?>")) {
        (Some(0), Some(end)) => format!("<?xml version=\"1.0\"?>{}", &text[end + 2..]),
        _ => text.to_string(),
    }
}

/// One element and its descendants; `path` holds the names of its
/// ancestors, for messages and the depth cap.
fn element(
    e: roxmltree::Node<'_, '_>,
    max_depth: usize,
    path: &mut Vec<String>,
) -> Result<Node, String> {
    if path.len() >= max_depth {
        return Err(format!(
            "{}: nested deeper than {max_depth}",
            path.join("/")
        ));
    }
    let mut n = Node {
        name: e.tag_name().name().to_string(),
        attrs: e
            .attributes()
            .map(|a| (a.name().to_string(), a.value().to_string()))
            .collect(),
        ..Default::default()
    };
    path.push(n.name.clone());
    for c in e.children() {
        if c.is_element() {
            n.children.push(element(c, max_depth, path)?);
        } else if c.is_text() {
            n.text.push_str(c.text().unwrap_or_default());
        }
    }
    path.pop();
    Ok(n)
}

impl Node {
    /// Children with this local name.
    pub fn all<'a, 'b: 'a>(&'a self, name: &'b str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The text at a relative path ("Part", "Detail/Part", "@no", ".").
    pub fn value(&self, path: &str) -> Option<String> {
        if path == "." {
            return Some(self.text.trim().to_string());
        }
        let mut node = self;
        let mut segs = path.split('/').peekable();
        while let Some(seg) = segs.next() {
            if let Some(attr) = seg.strip_prefix('@') {
                return node
                    .attrs
                    .iter()
                    .find(|(k, _)| k == attr)
                    .map(|(_, v)| v.clone());
            }
            node = node.all(seg).next()?;
            if segs.peek().is_none() {
                return Some(node.text.trim().to_string());
            }
        }
        None
    }

    /// Nodes at an absolute path from this root: the first segment must be
    /// this node's name; the last may match several; each comes with its path.
    pub fn select<'a>(&'a self, path: &str) -> Vec<(String, &'a Node)> {
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        if segs.first() != Some(&self.name.as_str()) {
            return Vec::new();
        }
        let mut current: Vec<(String, &Node)> = vec![(self.name.clone(), self)];
        for seg in &segs[1..] {
            let mut next = Vec::new();
            for (p, n) in &current {
                for (i, c) in n.children.iter().filter(|c| c.name == *seg).enumerate() {
                    next.push((format!("{p}/{seg}[{}]", i + 1), c));
                }
            }
            current = next;
        }
        current
    }
}

/// The answer's payload: the root, or the first child of a SOAP Body. A SOAP
/// Fault is an error: "Server" faults are transient, others final.
pub fn unwrap_soap(root: Node) -> Result<Node, AdapterError> {
    if root.name != "Envelope" {
        return Ok(root);
    }
    let body = root
        .all("Body")
        .next()
        .cloned()
        .ok_or_else(|| AdapterError::Malformed("Envelope: no Body".into()))?;
    let first = body
        .children
        .into_iter()
        .next()
        .ok_or_else(|| AdapterError::Malformed("Envelope/Body: empty".into()))?;
    if first.name == "Fault" {
        let code = first.value("faultcode").unwrap_or_default();
        let text = first.value("faultstring").unwrap_or_default();
        return Err(if code.ends_with("Server") {
            AdapterError::Unavailable(format!("SOAP fault {code}: {text}"))
        } else {
            AdapterError::Rejected(Reason::new(
                ReasonCode::PartnerRejected,
                format!("SOAP fault {code}: {text}"),
            ))
        });
    }
    Ok(first)
}

// ---------------------------------------------------------------- answers

/// An answer's body as a document: a SOAP fault is read for its code (it
/// comes with HTTP 500); otherwise an HTTP error by its class; otherwise the
/// document, or why it cannot be read.
pub fn answer_root(
    status: hyper::StatusCode,
    body: &[u8],
    max_bytes: usize,
    max_depth: usize,
) -> Result<Node, AdapterError> {
    let parsed = parse_xml(body, max_bytes, max_depth);
    match (status.as_u16(), parsed) {
        (_, Ok(root)) if root.name == "Envelope" => unwrap_soap(root),
        (s, _) if s >= 500 || s == 429 || s == 401 || s == 403 => {
            Err(AdapterError::Unavailable(format!("HTTP {status}")))
        }
        (s, _) if s >= 400 => Err(AdapterError::Rejected(Reason::new(
            ReasonCode::PartnerRejected,
            format!("HTTP {status}"),
        ))),
        (_, Ok(root)) => Ok(root),
        (_, Err(e)) => Err(AdapterError::Malformed(e)),
    }
}

/// The refusal an answer carries at `answer.error`, if any: the element's
/// words (its text, else its descendants' texts), which reach the scheme,
/// the patient's notice and the console as the mutuelle's own, with no
/// path before them. An element that says nothing (no words but zeros,
/// no attribute but a zero code: `<erreur/>`, `<erreur code="0"></erreur>`,
/// as many systems write in a success) refuses nothing. One with only a
/// code says it (`erreur code=12`).
///
/// First, the answer's "try again later" at `answer.busy`, if it says one:
/// a transient failure, retried with the same key.
pub fn refusal(answer: &AnswerPaths, root: &Node) -> Option<AdapterError> {
    if let Some(e) = busy(answer, root) {
        return Some(e);
    }
    let p = answer.error.as_ref()?;
    let (_, n) = root.select(p).into_iter().next()?;
    let zero = |v: &str| v.trim().chars().all(|c| c == '0');
    let mut words = words_of(n);
    // `xsi:nil="true"` is how .NET and SOAP serializers write an empty
    // element: no code.
    let codes: Vec<String> = n
        .attrs
        .iter()
        .filter(|(k, v)| !zero(v) && k != "nil")
        .map(|(k, v)| format!("{k}={}", v.trim()))
        .collect();
    if zero(&words) {
        if codes.is_empty() {
            return None;
        }
        words = format!("{} {}", n.name, codes.join(" "));
    }
    Some(AdapterError::Rejected(Reason::new(
        ReasonCode::PartnerRejected,
        words,
    )))
}

/// The "try again later" an answer carries at `answer.busy` (an element,
/// or an attribute by a last `/@name` segment), when its value is one of
/// `busy_values` (any, when there are none), with the element's words.
/// The element at a path and its text, or (the path ending in `/@name`)
/// its attribute's; None when absent.
fn value_at<'a>(root: &'a Node, p: &str) -> Option<(&'a Node, String)> {
    let (element, attribute) = match p.rsplit_once("/@") {
        Some((e, a)) => (e, Some(a)),
        None => (p, None),
    };
    let (_, n) = root.select(element).into_iter().next()?;
    let value = match attribute {
        Some(a) => n.attrs.iter().find(|(k, _)| k == a)?.1.trim().to_string(),
        None => n.text.trim().to_string(),
    };
    Some((n, value))
}

/// Whether the answer is for the request sent, where the partner echoes
/// its key (`answer.key`): absent or another value is an answer for
/// another request (a proxy's cache, a mix-up of two connections), whose
/// lines may fit this claim's numbers: refused as malformed, never booked.
/// Without `answer.key` nothing can be checked.
pub fn answers_the_key(answer: &AnswerPaths, root: &Node, key: &str) -> Result<(), AdapterError> {
    let Some(p) = answer.key.as_deref() else {
        return Ok(());
    };
    match value_at(root, p).map(|(_, v)| v) {
        Some(v) if v == key => Ok(()),
        Some(v) => Err(AdapterError::Malformed(format!(
            "{p}: the answer is for {v:?}, not for the request sent, {key:?}: an answer for another request is never used"
        ))),
        None => Err(AdapterError::Malformed(format!(
            "{p}: missing: the answer must say the key of the request it answers"
        ))),
    }
}

fn busy(answer: &AnswerPaths, root: &Node) -> Option<AdapterError> {
    let p = answer.busy.as_deref()?;
    let (n, value) = value_at(root, p)?;
    let listed = answer.busy_values.is_empty()
        || answer
            .busy_values
            .iter()
            .any(|v| v.trim().eq_ignore_ascii_case(&value));
    if !listed {
        return None;
    }
    let words = words_of(n);
    Some(AdapterError::Unavailable(if words.is_empty() {
        "the mutuelle asks to try again later".to_string()
    } else {
        format!("the mutuelle asks to try again later: {words}")
    }))
}

/// What an element says: its text, else its descendants' texts.
fn words_of(n: &Node) -> String {
    let text = n.text.trim();
    if text.is_empty() {
        descendant_words(n).join(" ")
    } else {
        text.to_string()
    }
}

/// What an answer to a call with lines (adjudicate, preauthorize) says, as
/// the broker reads it (the exchange and `passerelle translate` both read
/// it here): its "try again later" or its refusal ([`refusal`]); an answer
/// that refuses and pays lines too, with no line, a line twice or a
/// negative share, refused as an answer ([`AdapterError::Malformed`]: the
/// partner, which may have booked its lines, is sent the cancel; a refusal
/// taken alone would leave its booking standing); else its lines and
/// reference. The checks against the claim's own lines (M above R, a line
/// missing) are the broker's.
pub fn read_answer(
    answer: &AnswerPaths,
    root: &Node,
    numbers: &NumberFormat,
    currency: &str,
) -> Result<AdjudicationAnswer, AdapterError> {
    let read = read_adjudication(root, answer, numbers, currency);
    if let Some(e) = refusal(answer, root) {
        if let (AdapterError::Rejected(r), Ok(a)) = (&e, &read)
            && !a.lines.is_empty()
        {
            return Err(AdapterError::Malformed(format!(
                "the answer both refuses ({}) and answers {} line(s)",
                r.message,
                a.lines.len()
            )));
        }
        return Err(e);
    }
    let a = read.map_err(AdapterError::Malformed)?;
    if a.lines.is_empty() {
        return Err(AdapterError::Malformed(format!(
            "{}: no line in the answer",
            answer.lines.as_deref().unwrap_or_default()
        )));
    }
    let mut seen = std::collections::BTreeSet::new();
    for l in &a.lines {
        if !seen.insert(l.sequence) {
            return Err(AdapterError::Malformed(format!(
                "{}: line {} answered twice",
                l.path, l.sequence
            )));
        }
        if l.share < 0 {
            return Err(AdapterError::Malformed(format!(
                "{}: negative mutuelle share",
                l.path
            )));
        }
    }
    Ok(a)
}

/// The texts of a node's descendants, in document order, blank ones left out.
fn descendant_words(n: &Node) -> Vec<String> {
    let mut out = Vec::new();
    for c in &n.children {
        let t = c.text.trim();
        if !t.is_empty() {
            out.push(t.to_string());
        }
        out.extend(descendant_words(c));
    }
    out
}

/// Whether an eligibility answer says the member is covered.
pub fn read_covered(answer: &AnswerPaths, root: &Node) -> Result<bool, AdapterError> {
    let path = answer
        .covered
        .as_deref()
        .ok_or_else(|| AdapterError::Malformed("eligibility.answer.covered is not set".into()))?;
    let (_, n) = root
        .select(path)
        .into_iter()
        .next()
        .ok_or_else(|| AdapterError::Malformed(format!("{path}: missing")))?;
    let yes = if answer.covered_values.is_empty() {
        vec!["true".to_string(), "1".into(), "yes".into(), "oui".into()]
    } else {
        answer.covered_values.clone()
    };
    Ok(yes.iter().any(|y| y.eq_ignore_ascii_case(n.text.trim())))
}

/// One line of an adjudication answer, as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnswerLine {
    /// Where it is in the document ("Reponse/Ligne[2]").
    pub path: String,
    pub sequence: u32,
    /// The mutuelle's share, minor units of the claim's currency.
    pub share: i64,
    /// The text at `answer.reason`, when that path is set and present.
    pub reason: Option<String>,
}

/// What an adjudication answer says: its lines (none when `answer.lines`
/// matches nothing) and the partner's reference ("" when absent).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdjudicationAnswer {
    pub lines: Vec<AnswerLine>,
    pub reference: String,
}

/// Reads an adjudication answer at the paths of `answer`, amounts in the
/// partner's number format, in minor units of `currency`. An error names the
/// element at fault (`Reponse/Ligne[2]/Part: ...`).
pub fn read_adjudication(
    root: &Node,
    answer: &AnswerPaths,
    numbers: &NumberFormat,
    currency: &str,
) -> Result<AdjudicationAnswer, String> {
    let lines_path = answer.lines.as_deref().unwrap_or_default();
    let seq_path = answer.sequence.as_deref().unwrap_or("@sequence");
    let share_path = answer.share.as_deref().unwrap_or("share");
    let digits = minor_unit_digits(currency).unwrap_or(0);
    let mut lines = Vec::new();
    for (path, n) in root.select(lines_path) {
        let seq_text = n
            .value(seq_path)
            .ok_or_else(|| format!("{path}/{seq_path}: missing"))?;
        let sequence: u32 = seq_text
            .trim()
            .parse()
            .map_err(|_| format!("{path}/{seq_path}: {seq_text:?} is not a line number"))?;
        let share_text = n
            .value(share_path)
            .ok_or_else(|| format!("{path}/{share_path}: missing"))?;
        crate::decimal::check_not_grouped(
            &share_text,
            digits,
            numbers.decimal_comma,
            numbers.write_decimals,
        )
        .map_err(|m| format!("{path}/{share_path}: {m}"))?;
        let share = parse_minor(
            &share_text,
            digits,
            numbers.decimal_comma,
            numbers.group_spaces,
        )
        .map_err(|m| format!("{path}/{share_path}: {m}"))?;
        let reason = answer.reason.as_deref().and_then(|r| n.value(r));
        lines.push(AnswerLine {
            path,
            sequence,
            share,
            reason,
        });
    }
    let reference = answer
        .reference
        .as_deref()
        .and_then(|p| {
            root.select(p)
                .into_iter()
                .next()
                .map(|(_, n)| n.text.trim().to_string())
        })
        .unwrap_or_default();
    Ok(AdjudicationAnswer { lines, reference })
}
