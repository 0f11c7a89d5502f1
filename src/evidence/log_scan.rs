//! Signals in job logs, read streamed from the end with bounded memory.
