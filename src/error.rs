//! One error type for the whole crate: every message names the problem in words a user can act on.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model file is missing, truncated, corrupt, or not a model we can run.
    #[error("model: {0}")]
    Model(String),
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A detox vector file is malformed or does not match the loaded model.
    #[error("vectors: {0}")]
    Vectors(String),
    /// A request that cannot be honoured: empty or over-long prompt, bad α, bad sampling settings.
    #[error("{0}")]
    Input(String),
    #[error("steering pairs: {0}")]
    Pairs(String),
    #[error("judge: {0}")]
    Judge(#[from] crate::judge::JudgeError),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// The value among `values` whose `name` is `given`.
pub fn find_named<T: Copy>(values: &[T], name: fn(T) -> &'static str, given: &str) -> Option<T> {
    values.iter().copied().find(|&v| name(v) == given)
}

/// The error for a name that is none of `names`: "unknown WHAT `given` (expected a, b or c)".
pub fn unknown_name(what: &str, given: &str, names: &[&str]) -> Error {
    let expected = match names {
        [] => String::new(),
        [only] => only.to_string(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    };
    Error::Input(format!("unknown {what} `{given}` (expected {expected})"))
}

/// `bail!(Kind, "format", args)`: return early with an `Error::Kind(message)`.
#[macro_export]
macro_rules! bail {
    ($kind:ident, $($arg:tt)*) => {
        return Err($crate::error::Error::$kind(format!($($arg)*)))
    };
}
