//! Guides: how to pair the crate with what surrounds it (clients, CORS, tests, the browser's side
//! of a reset). Documentation only; every Rust example in it is a doctest that runs.

pub mod clients;
pub mod recipes;
