//! Renders `docs/api.md` from the descriptor set (services, RPCs, messages, fields, enums and
//! their comments from `proto/`) and fails when the committed file is stale, or when any
//! element of the API has no comment: the proto is the integrators' documentation.
//!
//! Regenerate with `UPDATE_API_DOCS=1 cargo test -p tongban-proto --test api_docs`.

use std::{fmt::Write as _, path::PathBuf};

use prost_reflect::{
    Cardinality, EnumDescriptor, FieldDescriptor, FileDescriptor, Kind, MessageDescriptor,
};
use tongban_proto::json::pool;

/// The leading comment of the element at `path` in `file`, trimmed, paragraphs kept.
fn comment(file: &FileDescriptor, path: &[i32]) -> Option<String> {
    let info = file.file_descriptor_proto().source_code_info.as_ref()?;
    let loc = info.location.iter().find(|l| l.path == path)?;
    let text = loc.leading_comments.as_deref()?;
    let lines: Vec<&str> = text
        .lines()
        .map(|l| l.strip_prefix(' ').unwrap_or(l).trim_end())
        .collect();
    let joined = lines.join("\n").trim().to_string();
    (!joined.is_empty()).then_some(joined)
}

/// A comment for a table cell: one line, paragraphs joined by `<br>`, pipes escaped.
fn cell(text: &str) -> String {
    text.split("\n\n")
        .map(|p| p.split('\n').map(str::trim).collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("<br>")
        .replace('|', "\\|")
}

/// A comment as Markdown prose. Lines starting with `* ` are list items already.
fn prose(text: &str) -> String {
    let mut out = String::new();
    for para in text.split("\n\n") {
        let lines: Vec<&str> = para.lines().collect();
        if lines.first().is_some_and(|l| l.starts_with("* ")) {
            for (i, l) in lines.iter().enumerate() {
                if i == 0 {
                    out.push_str(l);
                } else if l.starts_with("* ") {
                    let _ = write!(out, "\n{l}");
                } else {
                    let _ = write!(out, " {}", l.trim());
                }
            }
            out.push_str("\n\n");
        } else {
            let _ = write!(
                out,
                "{}\n\n",
                lines.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ")
            );
        }
    }
    out.trim_start_matches('\n').to_string()
}

fn type_name(package: &str, full: &str) -> String {
    let short = full
        .strip_prefix(package)
        .and_then(|s| s.strip_prefix('.'))
        .unwrap_or(full);
    format!("`{short}`")
}

fn field_type(package: &str, f: &FieldDescriptor) -> String {
    let base = |k: Kind| match k {
        Kind::Message(m) => type_name(package, m.full_name()),
        Kind::Enum(e) => type_name(package, e.full_name()),
        other => format!("`{other:?}`").to_lowercase(),
    };
    if f.is_map()
        && let Kind::Message(entry) = f.kind()
    {
        return format!(
            "map<{}, {}>",
            base(entry.map_entry_key_field().kind()),
            base(entry.map_entry_value_field().kind())
        );
    }
    let t = base(f.kind());
    if f.cardinality() == Cardinality::Repeated {
        format!("repeated {t}")
    } else {
        t
    }
}

struct Doc {
    out: String,
    missing: Vec<String>,
}

impl Doc {
    fn comment(&mut self, file: &FileDescriptor, path: &[i32], what: &str) -> String {
        comment(file, path).unwrap_or_else(|| {
            self.missing.push(what.to_string());
            String::new()
        })
    }

    fn enum_(&mut self, file: &FileDescriptor, e: &EnumDescriptor) {
        let c = self.comment(file, e.path(), e.full_name());
        let _ = write!(
            self.out,
            "#### enum `{}`\n\n{}| Value | Number | Description |\n| --- | --- | --- |\n",
            e.name(),
            prose(&c)
        );
        for (i, v) in e.values().enumerate() {
            let mut path = e.path().to_vec();
            path.extend([2, i as i32]);
            let c = self.comment(file, &path, v.full_name());
            let _ = writeln!(
                self.out,
                "| `{}` | {} | {} |",
                v.name(),
                v.number(),
                cell(&c)
            );
        }
        self.out.push('\n');
    }

    fn message(&mut self, file: &FileDescriptor, m: &MessageDescriptor) {
        let package = file.package_name();
        let c = self.comment(file, m.path(), m.full_name());
        let _ = write!(self.out, "#### message `{}`\n\n{}", m.name(), prose(&c));
        if m.fields().len() > 0 {
            self.out
                .push_str("| Field | Number | Type | Description |\n| --- | --- | --- | --- |\n");
        }
        for (i, f) in m.fields().enumerate() {
            let mut path = m.path().to_vec();
            path.extend([2, i as i32]);
            let mut c = cell(&self.comment(file, &path, f.full_name()));
            if let Some(o) = f.containing_oneof().filter(|o| !o.is_synthetic()) {
                c = format!("{c} (one of `{}`)", o.name());
            }
            let _ = writeln!(
                self.out,
                "| `{}` | {} | {} | {} |",
                f.name(),
                f.number(),
                field_type(package, &f),
                c
            );
        }
        self.out.push('\n');
        for nested in m.child_enums() {
            self.enum_(file, &nested);
        }
    }

    fn file(&mut self, file: &FileDescriptor) {
        let package = file.package_name().to_string();
        let _ = write!(
            self.out,
            "## {package}\n\nFile `proto/{}`.\n\n",
            file.name()
        );
        let c = self.comment(file, &[2], &format!("package {package}"));
        self.out.push_str(&prose(&c));
        for (si, s) in file.services().enumerate() {
            let c = self.comment(file, &[6, si as i32], s.full_name());
            let _ = write!(self.out, "### service `{}`\n\n{}", s.name(), prose(&c));
            for (mi, rpc) in s.methods().enumerate() {
                let c = self.comment(file, &[6, si as i32, 2, mi as i32], rpc.full_name());
                let stream = if rpc.is_server_streaming() {
                    "stream "
                } else {
                    ""
                };
                let _ = write!(
                    self.out,
                    "#### rpc `{}`\n\n{} → {stream}{}\n\n{}",
                    rpc.name(),
                    type_name(&package, rpc.input().full_name()),
                    type_name(&package, rpc.output().full_name()),
                    prose(&c)
                );
            }
        }
        let enums: Vec<_> = file.enums().collect();
        let messages: Vec<_> = file.messages().collect();
        if !messages.is_empty() {
            self.out.push_str("### Messages\n\n");
            for m in &messages {
                self.message(file, m);
            }
        }
        if !enums.is_empty() {
            self.out.push_str("### Enums\n\n");
            for e in &enums {
                self.enum_(file, e);
            }
        }
    }
}

fn render() -> (String, Vec<String>) {
    let mut doc = Doc {
        out: String::from(
            "# Tongban gRPC API reference\n\n\
             <!-- Generated from proto/ by crates/proto/tests/api_docs.rs; do not edit. Regenerate with\n     \
             UPDATE_API_DOCS=1 cargo test -p tongban-proto --test api_docs -->\n\n\
             Every service, RPC, message, field and enum value of the Tongban API, with the comments\n\
             from `proto/`. The conventions every RPC follows (authentication, paging, idempotent\n\
             creates, `expected_version`, errors) are described under `tongban.common.v1`.\n\n",
        ),
        missing: Vec::new(),
    };
    let mut files: Vec<FileDescriptor> = pool()
        .files()
        .filter(|f| f.package_name().starts_with("tongban."))
        .collect();
    // Shared vocabulary first, then the services as a reader meets them, events last.
    let rank = |f: &FileDescriptor| {
        [
            "common",
            "intake",
            "approval",
            "dispatch",
            "notification",
            "events",
        ]
        .iter()
        .position(|p| f.package_name() == format!("tongban.{p}.v1"))
        .unwrap_or(usize::MAX)
    };
    files.sort_by_key(|f| (rank(f), f.name().to_string()));
    doc.out.push_str("## Contents\n\n");
    for f in &files {
        let anchor = f.package_name().replace('.', "");
        let _ = writeln!(doc.out, "- [{}](#{anchor})", f.package_name());
    }
    doc.out.push('\n');
    for f in &files {
        doc.file(f);
    }
    let out = doc.out.trim_end().to_string() + "\n";
    (out, doc.missing)
}

#[test]
fn every_element_of_the_api_has_a_comment() {
    let (_, missing) = render();
    assert!(
        missing.is_empty(),
        "{} elements of proto/ have no comment: {}",
        missing.len(),
        missing.join(", ")
    );
}

#[test]
fn docs_api_md_is_current() {
    let (rendered, _) = render();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/api.md");
    if std::env::var_os("UPDATE_API_DOCS").is_some() {
        std::fs::write(&path, &rendered).unwrap_or_else(|e| panic!("writing {path:?}: {e}"));
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == rendered,
        "docs/api.md is stale: it no longer matches proto/. Regenerate it with\n    \
         UPDATE_API_DOCS=1 cargo test -p tongban-proto --test api_docs\nand commit the result."
    );
}
