//! Uploads over HTTP: every sample e-invoice gives the totals its XML states; hostile files fail
//! clearly without harming other jobs; tenants are isolated; idempotency, auth and limits.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::Value;

use crate::support::{Backend, Options, Surge, on_both_backends, samples};

/// Totals and VAT breakdown read straight from an e-invoice, independently of Surge's parser.
#[derive(Debug, PartialEq)]
struct Expected {
    net: Decimal,
    tax: Decimal,
    gross: Decimal,
    payable: Decimal,
    /// (rate, taxable, tax), sorted.
    breakdown: Vec<(Decimal, Decimal, Decimal)>,
}

fn dec(text: Option<&str>) -> Decimal {
    text.map(str::trim).and_then(|t| Decimal::from_str(t).ok()).unwrap_or_default()
}

fn child<'a>(node: roxmltree::Node<'a, 'a>, name: &str) -> Option<roxmltree::Node<'a, 'a>> {
    node.children().find(|c| c.is_element() && c.tag_name().name() == name)
}

fn children<'a>(node: roxmltree::Node<'a, 'a>, name: &'a str) -> impl Iterator<Item = roxmltree::Node<'a, 'a>> {
    node.children().filter(move |c| c.is_element() && c.tag_name().name() == name)
}

fn path<'a>(node: roxmltree::Node<'a, 'a>, names: &[&str]) -> Option<roxmltree::Node<'a, 'a>> {
    names.iter().try_fold(node, |n, name| child(n, name))
}

fn text_of<'a>(node: Option<roxmltree::Node<'a, 'a>>) -> Option<&'a str> {
    node.and_then(|n| n.text())
}

fn expected_totals(xml: &str) -> Expected {
    let doc = roxmltree::Document::parse(xml).expect("sample parses");
    let root = doc.root_element();
    let mut breakdown = Vec::new();
    let expected = if root.tag_name().name() == "CrossIndustryInvoice" {
        let settlement =
            path(root, &["SupplyChainTradeTransaction", "ApplicableHeaderTradeSettlement"]).expect("settlement");
        let currency = text_of(child(settlement, "InvoiceCurrencyCode")).unwrap_or("");
        let sums = child(settlement, "SpecifiedTradeSettlementHeaderMonetarySummation").expect("summation");
        let tax = children(sums, "TaxTotalAmount")
            .find(|n| n.attribute("currencyID").is_none_or(|c| c == currency))
            .and_then(|n| n.text());
        for trade_tax in children(settlement, "ApplicableTradeTax") {
            breakdown.push((
                dec(text_of(child(trade_tax, "RateApplicablePercent"))),
                dec(text_of(child(trade_tax, "BasisAmount"))),
                dec(text_of(child(trade_tax, "CalculatedAmount"))),
            ));
        }
        Expected {
            net: dec(text_of(child(sums, "TaxBasisTotalAmount"))),
            tax: dec(tax),
            gross: dec(text_of(child(sums, "GrandTotalAmount"))),
            payable: dec(text_of(child(sums, "DuePayableAmount"))),
            breakdown: Vec::new(),
        }
    } else {
        let currency = text_of(child(root, "DocumentCurrencyCode")).unwrap_or("");
        let totals = child(root, "LegalMonetaryTotal").expect("LegalMonetaryTotal");
        let tax_total = children(root, "TaxTotal")
            .find(|t| child(*t, "TaxAmount").and_then(|a| a.attribute("currencyID")) == Some(currency))
            .expect("TaxTotal in document currency");
        for subtotal in children(tax_total, "TaxSubtotal") {
            breakdown.push((
                dec(text_of(path(subtotal, &["TaxCategory", "Percent"]))),
                dec(text_of(child(subtotal, "TaxableAmount"))),
                dec(text_of(child(subtotal, "TaxAmount"))),
            ));
        }
        Expected {
            net: dec(text_of(child(totals, "TaxExclusiveAmount"))),
            tax: dec(text_of(child(tax_total, "TaxAmount"))),
            gross: dec(text_of(child(totals, "TaxInclusiveAmount"))),
            payable: dec(text_of(child(totals, "PayableAmount"))),
            breakdown: Vec::new(),
        }
    };
    breakdown.iter_mut().for_each(|(r, t, x)| {
        *r = r.normalize();
        *t = t.normalize();
        *x = x.normalize();
    });
    breakdown.sort();
    Expected {
        net: expected.net.normalize(),
        tax: expected.tax.normalize(),
        gross: expected.gross.normalize(),
        payable: expected.payable.normalize(),
        breakdown,
    }
}

fn actual_totals(result: &Value) -> Expected {
    let d = |v: &Value| dec(v.as_str()).normalize();
    let mut breakdown: Vec<_> = result["vat_breakdown"]
        .as_array()
        .expect("vat_breakdown")
        .iter()
        .map(|b| (d(&b["rate"]), d(&b["taxable_amount"]), d(&b["tax_amount"])))
        .collect();
    breakdown.sort();
    let totals = &result["totals"];
    Expected {
        net: d(&totals["net"]),
        tax: d(&totals["tax"]),
        gross: d(&totals["gross"]),
        payable: d(&totals["payable"]),
        breakdown,
    }
}

fn sample_invoices() -> Vec<PathBuf> {
    let root = samples();
    let mut files = Vec::new();
    for folder in ["peppol-bis3", "xrechnung"] {
        for entry in std::fs::read_dir(root.join(folder)).expect("sample folder") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "xml") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn balanced(result: &Value) -> bool {
    let sum = |side: &str| -> Decimal {
        result["journal_entries"].as_array().expect("entries").iter().map(|e| dec(e[side].as_str())).sum()
    };
    let nothing_to_book = dec(result["totals"]["gross"].as_str()).is_zero();
    let entries = result["journal_entries"].as_array().expect("entries");
    (nothing_to_book || !entries.is_empty()) && sum("debit") == sum("credit")
}

on_both_backends!(
    every_sample_invoice_gives_its_stated_totals_and_hostile_files_fail_clearly,
    tenants_auth_idempotency_and_limits
);

async fn every_sample_invoice_gives_its_stated_totals_and_hostile_files_fail_clearly(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let surge = Surge::start_in(dir.path(), Options { backend, ..Options::default() }).unwrap();
    let key = surge.demo_key.clone().expect("first start prints a demo key");

    let invoices = sample_invoices();
    assert!(invoices.len() >= 70, "expected the Peppol and XRechnung samples, found {}", invoices.len());
    let hostile = ["billion-laughs.xml", "xxe.xml", "order.xml", "empty.xml", "random.pdf", "truncated.pdf"];

    // Hostile files go in first and in the middle, so good jobs run alongside them.
    let mut ids: HashMap<String, PathBuf> = HashMap::new();
    let hostile_dir = samples().join("hostile");
    let mut all: Vec<PathBuf> = hostile.iter().map(|f| hostile_dir.join(f)).collect();
    all.splice(3..3, invoices.iter().cloned());
    for file in &all {
        let content_type =
            if file.extension().is_some_and(|e| e == "pdf") { "application/pdf" } else { "application/xml" };
        let (status, body) = surge.upload(&key, content_type, std::fs::read(file).unwrap()).await.unwrap();
        assert_eq!(status, 202, "upload of {} answered {status}: {body}", file.display());
        ids.insert(body["id"].as_str().unwrap().to_owned(), file.clone());
    }

    let mut failures = Vec::new();
    for (id, file) in &ids {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let finished = surge.wait_finished(&key, id, Duration::from_secs(120)).await.unwrap();
        if hostile.contains(&name.as_str()) {
            assert_eq!(finished["status"], "failed", "{name} must fail: {finished}");
            let message = finished["error"]["message"].as_str().unwrap_or("");
            assert!(
                !message.is_empty() && finished["error"]["code"].is_string(),
                "{name} fails with a reason: {finished}"
            );
            let (status, body) = surge.get(&key, &format!("/v1/documents/{id}/result")).await.unwrap();
            assert_eq!(status, 422, "result of a failed document: {body}");
            continue;
        }
        if finished["status"] != "succeeded" {
            failures.push(format!("{name}: {finished}"));
            continue;
        }
        let (status, result) = surge.get(&key, &format!("/v1/documents/{id}/result")).await.unwrap();
        assert_eq!(status, 200);
        let expected = expected_totals(&std::fs::read_to_string(file).unwrap());
        let actual = actual_totals(&result);
        if expected != actual {
            failures.push(format!("{name}: expected {expected:?}, got {actual:?}"));
        }
        if !balanced(&result) {
            failures.push(format!("{name}: journal entries do not balance"));
        }
    }
    assert!(failures.is_empty(), "{} of {} invoices wrong:\n{}", failures.len(), invoices.len(), failures.join("\n"));

    // The specific reasons a user would see.
    let reason = |file: &str| {
        let id = ids.iter().find(|(_, p)| p.ends_with(file)).map(|(id, _)| id.clone()).unwrap();
        let surge = &surge;
        let key = key.clone();
        async move { surge.wait_finished(&key, &id, Duration::from_secs(5)).await.unwrap()["error"]["code"].clone() }
    };
    assert_eq!(reason("order.xml").await, "not_an_invoice");
    assert_eq!(reason("billion-laughs.xml").await, "rejected_document");
    assert_eq!(reason("xxe.xml").await, "rejected_document");
    assert_eq!(reason("empty.xml").await, "malformed_document");
    surge.stop().unwrap();
}

async fn tenants_auth_idempotency_and_limits(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        backend,
        env: [Options::default().env, vec![("SURGE_API__MAX_UPLOAD_BYTES".into(), "100000".into())]].concat(),
        ..Options::default()
    };
    let surge = Surge::start_in(dir.path(), options).unwrap();
    let acme = surge.add_tenant("acme").unwrap();
    let bravo = surge.add_tenant("bravo").unwrap();
    let invoice = std::fs::read(samples().join("peppol-bis3/base-example.xml")).unwrap();

    // Bad keys.
    for key in ["", "nonsense", "sk_surge_0000"] {
        let (status, body) = surge.upload(key, "application/xml", invoice.clone()).await.unwrap();
        assert_eq!(status, 401, "key {key:?}: {body}");
        assert_eq!(body["code"], "unauthorized");
    }
    let response = surge.client.get(format!("{}/v1/documents", surge.base)).send().await.unwrap();
    assert_eq!(response.status(), 401, "no Authorization header");

    // Limits: 415 for other types, 413 over the limit (declared or streamed).
    let (status, body) = surge.upload(&acme, "application/json", b"{}".to_vec()).await.unwrap();
    assert_eq!((status, body["code"].as_str()), (415, Some("unsupported_media_type")));
    let (status, body) = surge.upload(&acme, "application/pdf", vec![b'x'; 200_000]).await.unwrap();
    assert_eq!((status, body["code"].as_str()), (413, Some("payload_too_large")));
    // Twice the limit, chunked (no Content-Length): refused once the limit is passed; the rest is
    // drained so the client reads the answer.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..20).map(|_| Ok(vec![b'y'; 10_000])).collect();
    let streamed = surge
        .client
        .post(format!("{}/v1/documents", surge.base))
        .bearer_auth(&acme)
        .header("content-type", "application/pdf")
        .body(reqwest::Body::wrap_stream(tokio_stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), 413, "a chunked body over the limit is refused");

    // Upload with an idempotency key; a repeat returns the same job.
    let (status, first) = surge.upload_with(&acme, "application/xml", invoice.clone(), Some("inv-1")).await.unwrap();
    assert_eq!(status, 202);
    let (status, repeat) = surge.upload_with(&acme, "application/xml", invoice.clone(), Some("inv-1")).await.unwrap();
    assert_eq!(status, 200, "repeat answers 200: {repeat}");
    assert_eq!(repeat["id"], first["id"]);
    let (status, body) = surge.upload_with(&acme, "application/xml", b"<x/>".to_vec(), Some("inv-1")).await.unwrap();
    assert_eq!((status, body["code"].as_str()), (422, Some("idempotency_key_reused")));
    let (status, other) = surge.upload_with(&bravo, "application/xml", invoice.clone(), Some("inv-1")).await.unwrap();
    assert_eq!(status, 202, "keys are per tenant");
    assert_ne!(other["id"], first["id"]);

    let id = first["id"].as_str().unwrap();
    let done = surge.wait_finished(&acme, id, Duration::from_secs(60)).await.unwrap();
    assert_eq!(done["status"], "succeeded", "{done}");

    // Isolation: bravo cannot see acme's document; it looks exactly like a missing one.
    for path in [format!("/v1/documents/{id}"), format!("/v1/documents/{id}/result")] {
        let (status, foreign) = surge.get(&bravo, &path).await.unwrap();
        let (missing_status, missing) =
            surge.get(&bravo, &path.replace(id, "0190f5c2-0000-7000-8000-000000000000")).await.unwrap();
        assert_eq!((status, missing_status), (404, 404), "{path}");
        assert_eq!(foreign, missing, "another tenant's document is indistinguishable from a missing one");
    }
    let (_, bravo_list) = surge.get(&bravo, "/v1/documents").await.unwrap();
    let listed: Vec<_> = bravo_list["documents"].as_array().unwrap().iter().map(|d| d["id"].clone()).collect();
    assert_eq!(listed, vec![other["id"].clone()], "bravo lists only its own document");

    // Listing with a cursor and a status filter.
    for n in 0..4 {
        let (status, _) =
            surge.upload_with(&acme, "text/xml", invoice.clone(), Some(&format!("page-{n}"))).await.unwrap();
        assert_eq!(status, 202);
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = surge.get(&acme, &format!("/v1/documents?limit=2{cursor}")).await.unwrap();
        assert_eq!(status, 200, "{page}");
        seen.extend(page["documents"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5, "five documents over three pages");
    let (status, filtered) = surge.get(&acme, "/v1/documents?status=succeeded").await.unwrap();
    assert_eq!(status, 200);
    assert!(filtered["documents"].as_array().unwrap().iter().all(|d| d["status"] == "succeeded"));
    let (status, body) = surge.get(&acme, "/v1/documents?status=bogus").await.unwrap();
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_query")));

    // Ledger rules per tenant: acme books this supplier to its own account; bravo is unaffected.
    let rules = serde_json::json!({
        "rules": [{ "supplier_vat_id": "GB 1232434", "account": "4711", "account_name": "Office supplies" }]
    });
    let put =
        surge.client.put(format!("{}/v1/chart", surge.base)).bearer_auth(&acme).json(&rules).send().await.unwrap();
    assert_eq!(put.status(), 200);
    let bad = surge
        .client
        .put(format!("{}/v1/chart", surge.base))
        .bearer_auth(&acme)
        .json(&serde_json::json!({ "rules": [{ "acount": "1" }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422, "an invalid chart is refused with a reason");
    let (_, booked) = surge.upload_with(&acme, "application/xml", invoice.clone(), Some("ruled")).await.unwrap();
    let (_, unruled) = surge.upload_with(&bravo, "application/xml", invoice.clone(), Some("unruled")).await.unwrap();
    for (key, job, expect_rule) in [(&acme, &booked, true), (&bravo, &unruled, false)] {
        let id = job["id"].as_str().unwrap();
        surge.wait_finished(key, id, Duration::from_secs(60)).await.unwrap();
        let (_, result) = surge.get(key, &format!("/v1/documents/{id}/result")).await.unwrap();
        let accounts: Vec<_> =
            result["journal_entries"].as_array().unwrap().iter().map(|e| e["account"].clone()).collect();
        assert_eq!(accounts.contains(&serde_json::json!("4711")), expect_rule, "{accounts:?}");
    }

    // Health and metrics need no key.
    for path in ["/healthz", "/readyz", "/metrics"] {
        let response = surge.client.get(format!("{}{path}", surge.base)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    let metrics = surge.client.get(format!("{}/metrics", surge.base)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("surge_http_requests_total"), "{metrics}");
    assert!(!metrics.contains(id), "metrics never carry job ids");
    surge.stop().unwrap();
}
