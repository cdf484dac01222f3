use super::*;

fn usage(input: i64, output: i64, cached: Option<i64>, creation: Option<i64>) -> Usage {
    Usage {
        input_tokens: Some(input),
        output_tokens: Some(output),
        cached_input_tokens: cached,
        cache_creation_input_tokens: creation,
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

#[test]
fn builtin_loads_and_is_consistent() {
    let table = Default::default();
    let table = PriceTable::with_overrides(table, BUILTIN).expect("builtin prices are valid");
    assert!(table.len() > 30);
    assert_eq!(PriceTable::builtin().len(), table.len());
    for (alias, target) in &table.aliases {
        assert!(table.models.contains_key(target), "{alias} -> {target}");
    }
}

#[test]
fn lookup_order() {
    let t = PriceTable::builtin();
    let p = |m: &str| t.lookup(m).copied();
    // exact
    assert_eq!(p("gpt-4o").map(|p| p.input), Some(2.5));
    // exact dated entry beats the dated-suffix rule
    assert_eq!(p("gpt-4o-2024-05-13").map(|p| p.input), Some(5.0));
    // dated suffix, OpenAI and Anthropic style
    assert_eq!(p("gpt-4o-2024-08-06"), p("gpt-4o"));
    assert_eq!(p("gpt-4o-mini-2024-07-18"), p("gpt-4o-mini"));
    assert_eq!(p("claude-sonnet-4-5-20250929"), p("claude-sonnet-4-5"));
    assert_eq!(p("claude-3-5-haiku-20241022").map(|p| p.input), Some(0.8));
    // alias, and alias after a provider prefix
    assert_eq!(p("claude-3-7-sonnet-latest"), p("claude-3-7-sonnet"));
    assert_eq!(p("anthropic/claude-sonnet-4-0"), p("claude-sonnet-4"));
    // provider prefix, also with a date
    assert_eq!(p("openai/gpt-4o"), p("gpt-4o"));
    assert_eq!(
        p("openrouter/openai/gpt-4.1-mini-2025-04-14"),
        p("gpt-4.1-mini")
    );
    // unknown
    assert_eq!(p("gpt-unknown"), None);
    assert_eq!(p("gpt-4o-20"), None);
    assert_eq!(p(""), None);
    assert_eq!(p("-20250101"), None);
}

#[test]
fn strip_date_shapes() {
    assert_eq!(strip_date("gpt-4o-2024-08-06"), Some("gpt-4o"));
    assert_eq!(
        strip_date("claude-opus-4-1-20250805"),
        Some("claude-opus-4-1")
    );
    assert_eq!(strip_date("gpt-4o"), None);
    assert_eq!(strip_date("x-2024-0806"), None);
    assert_eq!(strip_date("x-2024080"), None);
    assert_eq!(strip_date("-2024-08-06"), None);
}

#[test]
fn openai_cost_with_cache() {
    let t = PriceTable::builtin();
    // gpt-4o: 2.50 in, 1.25 cached, 10.00 out per 1M.
    // 1200 input of which 1024 cached, 80 output:
    // 176 * 2.5 + 1024 * 1.25 + 80 * 10 = 440 + 1280 + 800 = 2520 micro-USD.
    let c = t
        .cost("gpt-4o-2024-08-06", &usage(1200, 80, Some(1024), None))
        .expect("priced");
    assert!(close(c, 0.002520), "{c}");
}

#[test]
fn anthropic_cost_with_cache_read_and_write() {
    let t = PriceTable::builtin();
    // claude-sonnet-4-5: 3 in, 0.30 read, 3.75 write, 15 out.
    // Normalised input 32012 = 12 + 30000 read + 2000 written; 250 output:
    // 12*3 + 30000*0.3 + 2000*3.75 + 250*15 = 36 + 9000 + 7500 + 3750 = 20286.
    let c = t
        .cost(
            "claude-sonnet-4-5-20250929",
            &usage(32012, 250, Some(30000), Some(2000)),
        )
        .expect("priced");
    assert!(close(c, 0.020286), "{c}");
    // The brief's example: 1240 in, 380 out = 3720 + 5700 = 9420 micro-USD.
    let c = t
        .cost("claude-sonnet-4-5-20250929", &usage(1240, 380, None, None))
        .expect("priced");
    assert!(close(c, 0.00942), "{c}");
}

#[test]
fn fallbacks_to_input_price() {
    let t = PriceTable::default()
        .with_overrides("models:\n  m: {input: 2.0, output: 4.0}\n")
        .expect("valid");
    // cached and creation without their own prices cost like input.
    let c = t
        .cost("m", &usage(1000, 10, Some(300), Some(200)))
        .expect("priced");
    assert!(close(c, (1000.0 * 2.0 + 10.0 * 4.0) / 1e6), "{c}");
}

#[test]
fn embeddings_without_output() {
    let t = PriceTable::builtin();
    let u = Usage {
        input_tokens: Some(1_000_000),
        ..Usage::default()
    };
    let c = t.cost("text-embedding-3-small", &u).expect("priced");
    assert!(close(c, 0.02), "{c}");
}

#[test]
fn unknown_model_or_no_usage_is_none_never_zero() {
    let t = PriceTable::builtin();
    assert_eq!(t.cost("my-local-llama", &usage(100, 100, None, None)), None);
    assert_eq!(t.cost("gpt-4o", &Usage::default()), None);
    let only_cache = Usage {
        cached_input_tokens: Some(5),
        ..Usage::default()
    };
    assert_eq!(t.cost("gpt-4o", &only_cache), None);
}

#[test]
fn inconsistent_counts_do_not_go_negative() {
    let t = PriceTable::builtin();
    // cached > input (a provider bug): uncached clamps to 0.
    let c = t
        .cost("gpt-4o", &usage(100, -5, Some(200), None))
        .expect("priced");
    assert!(close(c, 200.0 * 1.25 / 1e6), "{c}");
}

#[test]
fn overrides_replace_and_extend() {
    let t = PriceTable::builtin()
        .with_overrides(
            "# company rates\nmodels:\n  gpt-4o: {input: 1.0, output: 2.0}\n  llama-3.1-70b: {input: 0.5, output: 0.5}\naliases:\n  my-gpt: gpt-4o\n",
        )
        .expect("valid");
    assert_eq!(
        t.lookup("gpt-4o").map(|p| (p.input, p.cached_input)),
        Some((1.0, None))
    );
    assert_eq!(t.lookup("my-gpt").map(|p| p.input), Some(1.0));
    assert_eq!(t.lookup("llama-3.1-70b").map(|p| p.output), Some(0.5));
    assert!(t.lookup("claude-haiku-4-5").is_some());
    assert_eq!(
        PriceTable::builtin()
            .with_overrides("")
            .expect("empty")
            .len(),
        PriceTable::builtin().len()
    );
    assert_eq!(
        PriceTable::builtin()
            .with_overrides("# nothing\n")
            .expect("empty")
            .len(),
        PriceTable::builtin().len()
    );
}

#[test]
fn bad_overrides_are_refused_with_a_reason() {
    let err = |y: &str| {
        PriceTable::builtin()
            .with_overrides(y)
            .expect_err("invalid")
            .to_string()
    };
    assert!(
        err("models:\n  m: {input: -1, output: 1}\n")
            .contains("input must be a finite number >= 0")
    );
    assert!(err("models:\n  m: {input: 1, output: .nan}\n").contains("output"));
    assert!(err("models:\n  m: {input: 1}\n").contains("output"));
    assert!(err("models:\n  m: {input: 1, output: 1, cahced_input: 1}\n").contains("cahced_input"));
    assert!(err("aliases:\n  x: nowhere\n").contains("nowhere"));
    assert!(err("prices: {}\n").contains("prices"));
}
