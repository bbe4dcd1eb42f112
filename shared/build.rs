//! `sqlx::migrate!` embeds the migrations folder at compile time, but stable Rust cannot tell
//! cargo to watch it: without this, a new migration file would leave an incremental build
//! running the old set.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
