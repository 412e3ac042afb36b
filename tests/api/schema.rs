//! The committed SDL snapshot matches the code.

#[test]
fn schema_graphql_matches_the_code() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql"))
        .expect("schema.graphql exists at the repository root");
    let current = roster::graphql::sdl();
    assert!(
        committed == current,
        "schema.graphql is out of date with the code.\n\
         Regenerate it with:  cargo run -q -- schema > schema.graphql\n\
         and review the diff before committing."
    );
}
