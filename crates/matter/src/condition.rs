//! Conditions: the `when = "..."` expressions that choose stages, tasks and branches.
//!
//! # Language
//! ```text
//! expr       := and ( "||" and )*
//! and        := unary ( "&&" unary )*
//! unary      := "!" unary | "(" expr ")" | test
//! test       := operand [ cmp operand | "in" "[" literal ("," literal)* "]"
//!                       | "starts_with" operand ]
//! cmp        := "==" | "!=" | "<" | "<=" | ">" | ">="
//! operand    := name | literal
//! literal    := 'text' | "text" | number | true | false
//! name       := form.<field> | credit_class | region_code | site_region | pledge
//!             | pledge_accepted
//! ```
//! A test without an operator must be boolean (`form.uses_water_intake`, `pledge`).
//!
//! # Names
//! * `form.<field>`: a field of the matter's form; its type comes from the schema
//!   (string, date and enum are text; integer and number are numbers; boolean is boolean).
//! * `credit_class`: `'A'` to `'D'` (text, so `credit_class >= 'C'` means C or D). An unknown
//!   class counts as `'C'`, as the common protobuf says.
//! * `region_code`: the applicant's administrative division code (text), e.g. `'350724100'`.
//! * `site_region`: the region township routing follows (text): the project site's region when
//!   the matter declares `site_region_field`, else the applicant's `region_code`.
//! * `pledge`: the applicant signed the commitment pledge (告知承诺).
//! * `pledge_accepted`: the pledge is signed *and* the matter's `[pledge]` policy admits the
//!   applicant's credit class; usable only in matters that have a `[pledge]` section.
//!
//! # Checks at load time
//! Conditions are parsed and type-checked when the definition loads: unknown names, form
//! fields not in the schema, comparisons of different types, ordering of booleans, enum
//! literals that are not among the field's allowed values, and credit classes other than A–D
//! are errors with the column where they occur.
//!
//! # Evaluation
//! A form field that is absent (or `null`, or of the wrong JSON type) makes every test that
//! reads it **false**, whatever the operator: with `form.x` missing, both `form.x == 1` and
//! `form.x != 1` are false, while `!(form.x == 1)` is true.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

use crate::form::{FieldType, FormSchema};

/// Enterprise credit risk class (企业信用风险分类); A is the lowest risk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CreditClass {
    A,
    B,
    C,
    D,
}

impl CreditClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::A => "A",
            Self::B => "B",
            Self::C => "C",
            Self::D => "D",
        }
    }
}

impl fmt::Display for CreditClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A credit class other than A, B, C or D.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("credit class must be one of A, B, C, D, got `{0}`")]
pub struct ParseCreditClassError(pub String);

impl FromStr for CreditClass {
    type Err = ParseCreditClassError;

    /// Accepts `A`..`D` in either case, surrounding spaces ignored.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "A" => Ok(Self::A),
            "B" => Ok(Self::B),
            "C" => Ok(Self::C),
            "D" => Ok(Self::D),
            _ => Err(ParseCreditClassError(s.to_owned())),
        }
    }
}

/// What conditions are evaluated against: one application.
#[derive(Debug, Clone, Copy)]
pub struct EvalContext<'a> {
    pub form: &'a Map<String, Value>,
    /// `None` when unknown (not in the credit registry, or the registry did not answer):
    /// conditions evaluate it as class C, and the pledge path never admits it.
    pub credit_class: Option<CreditClass>,
    /// The applicant's registered region code.
    pub region_code: &'a str,
    /// The project site's region code, when the matter declares `site_region_field` and the
    /// form gives it (see [`crate::MatterDefinition::site_region`]).
    pub site_region: Option<&'a str>,
    pub pledge_signed: bool,
}

impl<'a> EvalContext<'a> {
    /// The region township routing follows: the project site when known, else the applicant's
    /// region.
    pub fn routing_region(&self) -> &'a str {
        self.site_region.unwrap_or(self.region_code)
    }

    /// The class conditions see: unknown counts as C. Pledge eligibility does not use this (see
    /// [`crate::MatterDefinition::pledge_applies`]): unknown is never eligible.
    pub fn effective_credit_class(&self) -> CreditClass {
        self.credit_class.unwrap_or(CreditClass::C)
    }
}

/// A condition that failed to parse or type-check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct ConditionError {
    /// 1-based character position in the condition text.
    pub column: usize,
    pub message: String,
}

/// A parsed, type-checked condition.
#[derive(Debug, Clone)]
pub struct Condition {
    source: String,
    expr: Expr,
}

/// Longest condition, in characters. Definitions are published over the API, and the parser,
/// the evaluator and the drop of the tree recurse once per nesting level and per `&&`/`||`
/// term: bounding the text bounds the stack they need.
pub(crate) const MAX_CONDITION_CHARS: usize = 1000;
/// Deepest nesting of `(` and `!` (fuzzing found that 100 000 of them overflowed the stack).
pub(crate) const MAX_CONDITION_DEPTH: usize = 32;

impl Condition {
    /// Parses `source` against the names of a matter whose form is `form`.
    pub fn parse(source: &str, form: &FormSchema) -> Result<Self, ConditionError> {
        if source.chars().count() > MAX_CONDITION_CHARS {
            return Err(ConditionError {
                column: MAX_CONDITION_CHARS + 1,
                message: format!("longer than {MAX_CONDITION_CHARS} characters"),
            });
        }
        let tokens = lex(source)?;
        let mut parser = Parser {
            tokens,
            pos: 0,
            form,
            depth: 0,
        };
        let expr = parser.expr()?;
        let tok = parser.peek();
        if tok.kind != Tok::End {
            return Err(ConditionError {
                column: tok.column,
                message: format!("expected `&&`, `||` or the end, found {}", tok.kind),
            });
        }
        Ok(Self {
            source: source.to_owned(),
            expr,
        })
    }

    /// The condition as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates the condition; `pledge_accepted` is the value of the `pledge_accepted` name
    /// (see [`crate::MatterDefinition::pledge_applies`]).
    pub fn eval(&self, ctx: &EvalContext<'_>, pledge_accepted: bool) -> bool {
        self.expr.eval(&Facts {
            ctx,
            pledge_accepted,
        })
    }

    /// Whether the condition reads `pledge_accepted`.
    pub fn uses_pledge_accepted(&self) -> bool {
        self.expr.uses(&Name::PledgeAccepted)
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

// ---------------------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    Str(String),
    Num(f64),
    True,
    False,
    In,
    StartsWith,
    Cmp(CmpOp),
    And,
    Or,
    Not,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    End,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name(n) => write!(f, "`{n}`"),
            Self::Str(s) => write!(f, "'{s}'"),
            Self::Num(n) => write!(f, "{n}"),
            Self::True => f.write_str("`true`"),
            Self::False => f.write_str("`false`"),
            Self::In => f.write_str("`in`"),
            Self::StartsWith => f.write_str("`starts_with`"),
            Self::Cmp(op) => write!(f, "`{op}`"),
            Self::And => f.write_str("`&&`"),
            Self::Or => f.write_str("`||`"),
            Self::Not => f.write_str("`!`"),
            Self::LParen => f.write_str("`(`"),
            Self::RParen => f.write_str("`)`"),
            Self::LBracket => f.write_str("`[`"),
            Self::RBracket => f.write_str("`]`"),
            Self::Comma => f.write_str("`,`"),
            Self::End => f.write_str("the end of the condition"),
        }
    }
}

#[derive(Debug, Clone)]
struct Token {
    kind: Tok,
    column: usize,
}

fn lex(source: &str) -> Result<Vec<Token>, ConditionError> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let err = |column: usize, message: String| ConditionError { column, message };
    while i < chars.len() {
        let c = chars[i];
        let column = i + 1;
        let next = chars.get(i + 1).copied();
        let (kind, len) = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => (Tok::LParen, 1),
            ')' => (Tok::RParen, 1),
            '[' => (Tok::LBracket, 1),
            ']' => (Tok::RBracket, 1),
            ',' => (Tok::Comma, 1),
            '&' if next == Some('&') => (Tok::And, 2),
            '|' if next == Some('|') => (Tok::Or, 2),
            '&' | '|' => return Err(err(column, format!("`{c}` must be doubled: `{c}{c}`"))),
            '=' if next == Some('=') => (Tok::Cmp(CmpOp::Eq), 2),
            '=' => return Err(err(column, "use `==` to compare".into())),
            '!' if next == Some('=') => (Tok::Cmp(CmpOp::Ne), 2),
            '!' => (Tok::Not, 1),
            '<' if next == Some('=') => (Tok::Cmp(CmpOp::Le), 2),
            '<' => (Tok::Cmp(CmpOp::Lt), 1),
            '>' if next == Some('=') => (Tok::Cmp(CmpOp::Ge), 2),
            '>' => (Tok::Cmp(CmpOp::Gt), 1),
            '\'' | '"' => {
                let mut text = String::new();
                let mut j = i + 1;
                loop {
                    match chars.get(j) {
                        None => return Err(err(column, "text is not closed".into())),
                        Some('\\') => match chars.get(j + 1) {
                            Some(e @ ('\\' | '\'' | '"')) => {
                                text.push(*e);
                                j += 2;
                            }
                            _ => {
                                return Err(err(
                                    j + 1,
                                    "only \\\\, \\' and \\\" may follow a backslash".into(),
                                ));
                            }
                        },
                        Some(q) if *q == c => break,
                        Some(other) => {
                            text.push(*other);
                            j += 1;
                        }
                    }
                }
                (Tok::Str(text), j + 1 - i)
            }
            c if c.is_ascii_digit() || (c == '-' && next.is_some_and(|n| n.is_ascii_digit())) => {
                let mut j = i + 1;
                while chars
                    .get(j)
                    .is_some_and(|d| d.is_ascii_digit() || *d == '.')
                {
                    j += 1;
                }
                let text: String = chars[i..j].iter().collect();
                let n = text
                    .parse::<f64>()
                    .map_err(|_| err(column, format!("`{text}` is not a number")))?;
                (Tok::Num(n), j - i)
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut j = i + 1;
                while chars
                    .get(j)
                    .is_some_and(|d| d.is_ascii_alphanumeric() || *d == '_' || *d == '.')
                {
                    j += 1;
                }
                let word: String = chars[i..j].iter().collect();
                let kind = match word.as_str() {
                    "true" => Tok::True,
                    "false" => Tok::False,
                    "in" => Tok::In,
                    "starts_with" => Tok::StartsWith,
                    "and" | "or" | "not" => {
                        return Err(err(
                            column,
                            format!("`{word}` is not an operator; use `&&`, `||` or `!`"),
                        ));
                    }
                    _ => Tok::Name(word),
                };
                (kind, j - i)
            }
            other => return Err(err(column, format!("unexpected character `{other}`"))),
        };
        tokens.push(Token { kind, column });
        i += len;
    }
    tokens.push(Token {
        kind: Tok::End,
        column: chars.len() + 1,
    });
    Ok(tokens)
}

// ---------------------------------------------------------------------------------------------
// Syntax tree

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl fmt::Display for CmpOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Eq => "==",
            Self::Ne => "!=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Text,
    Number,
    Boolean,
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Text => "text",
            Self::Number => "a number",
            Self::Boolean => "a boolean",
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Name {
    Form(String),
    CreditClass,
    RegionCode,
    SiteRegion,
    Pledge,
    PledgeAccepted,
}

#[derive(Debug, Clone, PartialEq)]
enum Lit {
    Text(String),
    Number(f64),
    Boolean(bool),
}

#[derive(Debug, Clone, PartialEq)]
enum Operand {
    Name(Name),
    Lit(Lit),
}

#[derive(Debug, Clone)]
enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp(Operand, CmpOp, Operand),
    In(Operand, Vec<Lit>),
    StartsWith(Operand, Operand),
    Truthy(Operand),
}

impl Expr {
    fn uses(&self, name: &Name) -> bool {
        let op = |o: &Operand| matches!(o, Operand::Name(n) if n == name);
        match self {
            Self::Or(a, b) | Self::And(a, b) => a.uses(name) || b.uses(name),
            Self::Not(e) => e.uses(name),
            Self::Cmp(a, _, b) | Self::StartsWith(a, b) => op(a) || op(b),
            Self::In(a, _) | Self::Truthy(a) => op(a),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parser and type checker

struct Parser<'a> {
    tokens: Vec<Token>,
    pos: usize,
    form: &'a FormSchema,
    /// Open `(` and `!` around the current position.
    depth: usize,
}

/// An operand with what the checker knows about it.
struct Typed {
    operand: Operand,
    ty: Ty,
    column: usize,
    /// Text values the operand can take, when that is a closed set (enum fields, credit class).
    domain: Option<Vec<String>>,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        // The lexer always ends with `End`, and `bump` never moves past it.
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn bump(&mut self) -> Token {
        let tok = self.peek().clone();
        if tok.kind != Tok::End {
            self.pos += 1;
        }
        tok
    }

    fn expr(&mut self) -> Result<Expr, ConditionError> {
        let mut lhs = self.and()?;
        while self.peek().kind == Tok::Or {
            self.bump();
            let rhs = self.and()?;
            lhs = Expr::Or(Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn and(&mut self) -> Result<Expr, ConditionError> {
        let mut lhs = self.unary()?;
        while self.peek().kind == Tok::And {
            self.bump();
            let rhs = self.unary()?;
            lhs = Expr::And(Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    /// Goes one `(` or `!` deeper; refuses past [`MAX_CONDITION_DEPTH`].
    fn deeper(&mut self) -> Result<(), ConditionError> {
        self.depth += 1;
        if self.depth > MAX_CONDITION_DEPTH {
            return Err(ConditionError {
                column: self.peek().column,
                message: format!("nested deeper than {MAX_CONDITION_DEPTH} `(` and `!`"),
            });
        }
        Ok(())
    }

    fn unary(&mut self) -> Result<Expr, ConditionError> {
        match self.peek().kind {
            Tok::Not => {
                self.bump();
                self.deeper()?;
                let inner = self.unary()?;
                self.depth -= 1;
                Ok(Expr::Not(Box::new(inner)))
            }
            Tok::LParen => {
                self.bump();
                self.deeper()?;
                let inner = self.expr()?;
                self.depth -= 1;
                let tok = self.bump();
                if tok.kind != Tok::RParen {
                    return Err(ConditionError {
                        column: tok.column,
                        message: format!("expected `)`, found {}", tok.kind),
                    });
                }
                Ok(inner)
            }
            _ => self.test(),
        }
    }

    fn test(&mut self) -> Result<Expr, ConditionError> {
        let lhs = self.operand()?;
        match self.peek().kind.clone() {
            Tok::Cmp(op) => {
                self.bump();
                let rhs = self.operand()?;
                check_comparison(&lhs, op, &rhs)?;
                Ok(Expr::Cmp(lhs.operand, op, rhs.operand))
            }
            Tok::In => {
                self.bump();
                let list = self.list(&lhs)?;
                Ok(Expr::In(lhs.operand, list))
            }
            Tok::StartsWith => {
                self.bump();
                let rhs = self.operand()?;
                for side in [&lhs, &rhs] {
                    if side.ty != Ty::Text {
                        return Err(ConditionError {
                            column: side.column,
                            message: format!("`starts_with` needs text, this is {}", side.ty),
                        });
                    }
                }
                Ok(Expr::StartsWith(lhs.operand, rhs.operand))
            }
            _ => {
                if lhs.ty != Ty::Boolean {
                    return Err(ConditionError {
                        column: lhs.column,
                        message: format!(
                            "this is {}, not a condition; compare it with `==`, `in`, ...",
                            lhs.ty
                        ),
                    });
                }
                Ok(Expr::Truthy(lhs.operand))
            }
        }
    }

    fn list(&mut self, lhs: &Typed) -> Result<Vec<Lit>, ConditionError> {
        let open = self.bump();
        if open.kind != Tok::LBracket {
            return Err(ConditionError {
                column: open.column,
                message: format!("expected `[` after `in`, found {}", open.kind),
            });
        }
        let mut items = Vec::new();
        loop {
            let item = self.operand()?;
            let Operand::Lit(lit) = item.operand.clone() else {
                return Err(ConditionError {
                    column: item.column,
                    message: "a list holds literal values only".into(),
                });
            };
            check_comparison(lhs, CmpOp::Eq, &item)?;
            items.push(lit);
            let sep = self.bump();
            match sep.kind {
                Tok::Comma => {}
                Tok::RBracket => break,
                other => {
                    return Err(ConditionError {
                        column: sep.column,
                        message: format!("expected `,` or `]`, found {other}"),
                    });
                }
            }
        }
        Ok(items)
    }

    fn operand(&mut self) -> Result<Typed, ConditionError> {
        let tok = self.bump();
        let column = tok.column;
        let lit = |lit: Lit, ty: Ty| Typed {
            operand: Operand::Lit(lit),
            ty,
            column,
            domain: None,
        };
        Ok(match tok.kind {
            Tok::Str(s) => lit(Lit::Text(s), Ty::Text),
            Tok::Num(n) => lit(Lit::Number(n), Ty::Number),
            Tok::True => lit(Lit::Boolean(true), Ty::Boolean),
            Tok::False => lit(Lit::Boolean(false), Ty::Boolean),
            Tok::Name(word) => self.name(&word, column)?,
            other => {
                return Err(ConditionError {
                    column,
                    message: format!("expected a name or a value, found {other}"),
                });
            }
        })
    }

    fn name(&self, word: &str, column: usize) -> Result<Typed, ConditionError> {
        let typed = |name: Name, ty: Ty, domain: Option<Vec<String>>| Typed {
            operand: Operand::Name(name),
            ty,
            column,
            domain,
        };
        Ok(match word {
            "credit_class" => typed(
                Name::CreditClass,
                Ty::Text,
                Some(["A", "B", "C", "D"].map(String::from).to_vec()),
            ),
            "region_code" => typed(Name::RegionCode, Ty::Text, None),
            "site_region" => typed(Name::SiteRegion, Ty::Text, None),
            "pledge" => typed(Name::Pledge, Ty::Boolean, None),
            "pledge_accepted" => typed(Name::PledgeAccepted, Ty::Boolean, None),
            _ => {
                let Some(field) = word.strip_prefix("form.") else {
                    return Err(ConditionError {
                        column,
                        message: format!(
                            "unknown name `{word}`; expected form.<field>, credit_class, \
                             region_code, site_region, pledge or pledge_accepted"
                        ),
                    });
                };
                let Some(def) = self.form.field(field) else {
                    return Err(ConditionError {
                        column,
                        message: format!("form field `{field}` is not declared in the form"),
                    });
                };
                let (ty, domain) = match &def.ty {
                    FieldType::String { .. } | FieldType::Date => (Ty::Text, None),
                    FieldType::Enum { allowed } => (Ty::Text, Some(allowed.clone())),
                    FieldType::Integer { .. } | FieldType::Number { .. } => (Ty::Number, None),
                    FieldType::Boolean => (Ty::Boolean, None),
                };
                typed(Name::Form(field.to_owned()), ty, domain)
            }
        })
    }
}

fn check_comparison(lhs: &Typed, op: CmpOp, rhs: &Typed) -> Result<(), ConditionError> {
    if lhs.ty != rhs.ty {
        return Err(ConditionError {
            column: rhs.column,
            message: format!("cannot compare {} with {}", lhs.ty, rhs.ty),
        });
    }
    if lhs.ty == Ty::Boolean && !matches!(op, CmpOp::Eq | CmpOp::Ne) {
        return Err(ConditionError {
            column: lhs.column,
            message: format!("booleans have no order; `{op}` needs numbers or text"),
        });
    }
    // A literal outside a closed set is always a typo: `credit_class == 'E'`.
    for (name, other) in [(lhs, rhs), (rhs, lhs)] {
        if let (Some(domain), Operand::Lit(Lit::Text(t))) = (&name.domain, &other.operand)
            && matches!(op, CmpOp::Eq | CmpOp::Ne)
            && !domain.contains(t)
        {
            return Err(ConditionError {
                column: other.column,
                message: format!("'{t}' is not one of {}", domain.join(", ")),
            });
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Evaluation

struct Facts<'a, 'b> {
    ctx: &'a EvalContext<'b>,
    pledge_accepted: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Val<'a> {
    Text(&'a str),
    Number(f64),
    Boolean(bool),
}

impl Val<'_> {
    /// `None` for values of different types, which never compare.
    fn compare(&self, other: &Val<'_>) -> Option<Ordering> {
        match (self, other) {
            (Val::Text(a), Val::Text(b)) => Some(a.cmp(b)),
            (Val::Number(a), Val::Number(b)) => a.partial_cmp(b),
            (Val::Boolean(a), Val::Boolean(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

fn lit_val(lit: &Lit) -> Val<'_> {
    match lit {
        Lit::Text(t) => Val::Text(t),
        Lit::Number(n) => Val::Number(*n),
        Lit::Boolean(b) => Val::Boolean(*b),
    }
}

impl Expr {
    fn eval(&self, facts: &Facts<'_, '_>) -> bool {
        match self {
            Self::Or(a, b) => a.eval(facts) || b.eval(facts),
            Self::And(a, b) => a.eval(facts) && b.eval(facts),
            Self::Not(e) => !e.eval(facts),
            Self::Cmp(a, op, b) => match (value(a, facts), value(b, facts)) {
                (Some(a), Some(b)) => a.compare(&b).is_some_and(|ord| match op {
                    CmpOp::Eq => ord == Ordering::Equal,
                    CmpOp::Ne => ord != Ordering::Equal,
                    CmpOp::Lt => ord == Ordering::Less,
                    CmpOp::Le => ord != Ordering::Greater,
                    CmpOp::Gt => ord == Ordering::Greater,
                    CmpOp::Ge => ord != Ordering::Less,
                }),
                _ => false,
            },
            Self::In(a, list) => value(a, facts).is_some_and(|v| {
                list.iter()
                    .any(|l| v.compare(&lit_val(l)) == Some(Ordering::Equal))
            }),
            Self::StartsWith(a, b) => match (value(a, facts), value(b, facts)) {
                (Some(Val::Text(a)), Some(Val::Text(b))) => a.starts_with(b),
                _ => false,
            },
            Self::Truthy(a) => value(a, facts) == Some(Val::Boolean(true)),
        }
    }
}

fn value<'a>(operand: &'a Operand, facts: &Facts<'a, '_>) -> Option<Val<'a>> {
    match operand {
        Operand::Lit(lit) => Some(lit_val(lit)),
        Operand::Name(Name::CreditClass) => {
            Some(Val::Text(facts.ctx.effective_credit_class().as_str()))
        }
        Operand::Name(Name::RegionCode) => Some(Val::Text(facts.ctx.region_code)),
        Operand::Name(Name::SiteRegion) => Some(Val::Text(facts.ctx.routing_region())),
        Operand::Name(Name::Pledge) => Some(Val::Boolean(facts.ctx.pledge_signed)),
        Operand::Name(Name::PledgeAccepted) => Some(Val::Boolean(facts.pledge_accepted)),
        Operand::Name(Name::Form(field)) => match facts.ctx.form.get(field)? {
            Value::String(s) => Some(Val::Text(s)),
            Value::Number(n) => n.as_f64().map(Val::Number),
            Value::Bool(b) => Some(Val::Boolean(*b)),
            _ => None,
        },
    }
}
