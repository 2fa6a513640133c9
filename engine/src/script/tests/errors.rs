//! How failures are sorted into kinds, and located in the script's own source.

use super::*;

#[test]
fn throw_rejects_the_message_with_the_thrown_value() {
    let err = failure("if body.amount > 1000 {\n  throw \"amount too large: \" + body.amount;\n}");
    assert_eq!(err.kind, ScriptErrorKind::Thrown);
    assert_eq!(err.message, "amount too large: 1250");
    assert_eq!((err.line, err.column), (Some(2), Some(3)));
    assert_eq!(err.to_string(), "test.rhai:2:3: amount too large: 1250");

    let err = failure("fn check(x) {\n  throw x;\n}\ncheck(\"no\")");
    assert_eq!((err.kind, err.message.as_str()), (ScriptErrorKind::Thrown, "no"));
    assert_eq!(err.line, Some(2));
}

#[test]
fn syntax_errors_point_at_the_scripts_own_line() {
    let err = engine().compile("bad.rhai", "let a = 1;\nlet b = 2;\nlet c = ;\n").err();
    let err = err.expect("the script does not parse");
    assert_eq!(err.kind, ScriptErrorKind::Syntax);
    assert_eq!((err.line, err.column), (Some(3), Some(9)));
    assert_eq!(err.to_string(), "bad.rhai:3:9: Unexpected ';'");
}

#[test]
fn runtime_errors_carry_their_line() {
    let err = failure("let a = [1];\nlet b = 2;\na[5] + b");
    assert_eq!(err.kind, ScriptErrorKind::Runtime);
    assert_eq!(err.line, Some(3));
    assert_eq!(err.message, "Array index 5 out of bounds: only 1 element in array");

    let err = failure("let a = 1;\nnot_a_function(a)");
    assert_eq!((err.kind, err.line), (ScriptErrorKind::Runtime, Some(2)));
}

#[test]
fn errors_inside_functions_point_into_the_function() {
    let err = failure("fn first(items) {\n  items[5]\n}\nfirst([1])");
    assert_eq!((err.kind, err.line), (ScriptErrorKind::Runtime, Some(2)));
    assert_eq!(err.message, "Array index 5 out of bounds: only 1 element in array (in function 'first')");
}

#[test]
fn expressions_reject_statements() {
    let err = engine().compile_expression("key", "let x = 1").err();
    assert_eq!(err.map(|e| e.kind), Some(ScriptErrorKind::Syntax));
}

#[test]
fn deep_nesting_is_a_compile_time_limit() {
    let source = format!("{}1{}", "(".repeat(500), ")".repeat(500));
    let err = engine().compile("deep.rhai", &source).err();
    assert_eq!(err.map(|e| e.kind), Some(ScriptErrorKind::Limit));
    let err = engine().compile_expression("deep", &source).err();
    assert_eq!(err.map(|e| e.kind), Some(ScriptErrorKind::Limit));
}
