use unicode_security::confusable_detection::skeleton;
fn main() {
    for s in ["ѕуѕтем", "ЅУЅТЕМ", "арі", "АРІ", "ΑΡΙ", "αρι", "system", "SYSTEM", "api", "API", "роот", "РООТ", "ali", "all", "ALI", "ALL"] {
        let k: String = skeleton(s).collect();
        println!("{s} -> {k}");
    }
}
