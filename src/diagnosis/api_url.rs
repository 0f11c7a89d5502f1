//! placeholder
use crate::diagnosis::{Facts, Finding};
pub fn check(_facts: &Facts) -> Vec<Finding> {
    Vec::new()
}
