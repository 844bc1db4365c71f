//! The render side of graphite-web: target expressions (`grammar.rs`), evaluation against a
//! [`Store`] (`eval.rs`), the function library (`functions/`), series (`series.rs`).
//!
//! Leaves out: HTTP (the `http` module calls in here), where the data lives (a [`Store`]
//! implementation gives series: whisper files with cached points overlaid).
//!
//! **Architecture Invariant:** rendering writes nothing and never blocks a writer: cached
//! points are asked for by message, files are read without locks; every request is bounded
//! (`Limits`) and every failure is a [`RenderError`], never a panic.

pub mod consolidate;
pub mod eval;
pub mod format;
pub mod functions;
pub mod grammar;
pub mod series;
pub mod store;
pub mod time;

pub use eval::{Args, Ctx, Limits, Spent, Store};
pub use grammar::{parse, Call, Expr, ParseError};
pub use series::{Consolidation, Series};

/// Why a render request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The request is at fault (bad target, argument, time, or too large): HTTP 400.
    #[error("{0}")]
    BadRequest(String),
    /// We are (a file that cannot be read): HTTP 500.
    #[error("{0}")]
    Internal(String),
}

impl RenderError {
    /// A 400 with `message`.
    pub fn bad(message: impl Into<String>) -> RenderError {
        RenderError::BadRequest(message.into())
    }

    /// Whether the request is at fault.
    pub fn is_bad_request(&self) -> bool {
        matches!(self, RenderError::BadRequest(_))
    }
}

impl From<ParseError> for RenderError {
    fn from(e: ParseError) -> Self {
        RenderError::BadRequest(e.to_string())
    }
}
