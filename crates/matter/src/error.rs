//! Errors of loading definitions and of planning an instance.
//!
//! Loading collects every problem of a file before failing, so an operator fixes a definition in
//! one round; each [`Problem`] names the place (stage, task, field, ...) and, where known, the
//! line in the file.

use std::fmt;

/// A definition (matter or departments file) that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    /// The file or directory could not be read.
    #[error("{origin}: cannot read: {source}")]
    Io {
        origin: String,
        #[source]
        source: std::io::Error,
    },
    /// Not valid TOML, or a key that the format does not know (the message carries line and
    /// column).
    #[error("{origin}: {message}")]
    Syntax { origin: String, message: String },
    /// Well-formed TOML that breaks the rules of the format.
    #[error("{origin}: {}", join(.problems))]
    Invalid {
        origin: String,
        problems: Vec<Problem>,
    },
    /// Two files define the same matter code and version.
    #[error("{origin}: matter `{code}` version {version} is already defined in {first}")]
    Duplicate {
        origin: String,
        code: String,
        version: u32,
        first: String,
    },
}

impl DefinitionError {
    /// The problems of an `Invalid` definition; empty for the other kinds.
    pub fn problems(&self) -> &[Problem] {
        match self {
            Self::Invalid { problems, .. } => problems,
            _ => &[],
        }
    }
}

fn join(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(Problem::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// One rule a definition breaks, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    /// The place, e.g. "stage `joint_review` task 3 (water)" or "form field `project_code`".
    pub place: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}: {}", self.place, self.message),
            None => write!(f, "{}: {}", self.place, self.message),
        }
    }
}

/// Why a plan could not be made for a given application.
///
/// Definitions are validated at load time, so these arise only from input that skipped form
/// validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// A `department_from` field is missing or holds no department code.
    #[error("stage `{stage}`: form field `{field}` must name the handling department, got {value}")]
    DepartmentFromForm {
        stage: String,
        field: String,
        value: String,
    },
    /// A department named by the form is not in the departments file.
    #[error("stage `{stage}`: unknown department `{department}`")]
    UnknownDepartment { stage: String, department: String },
    /// The stage graph did not end (impossible for a validated definition).
    #[error("the workflow did not finish within {steps} stage transitions")]
    NoTermination { steps: usize },
}
