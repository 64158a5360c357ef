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
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
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

/// The refusal an answer carries at `answer.error`, if any.
pub fn refusal(answer: &AnswerPaths, root: &Node) -> Option<AdapterError> {
    let p = answer.error.as_ref()?;
    let (path, n) = root.select(p).into_iter().next()?;
    Some(AdapterError::Rejected(Reason::new(
        ReasonCode::PartnerRejected,
        format!("{path}: {}", n.text.trim()),
    )))
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
