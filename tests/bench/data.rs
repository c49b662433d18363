//! Synthetic partner answers for the benchmarks (fake data, test-range BSN).

/// A UWV income answer (valid against `uwv-inkomen.response.schema.json`) of about `bytes`:
/// one job plus as many benefit entries as it takes.
pub fn uwv_body(bytes: usize) -> Vec<u8> {
    let mut uitkeringen = Vec::new();
    let mut doc = serde_json::json!({
        "bsn": "999990019",
        "inkomsten": [{"soort": "loon", "werkgever": "Voorbeeld Schoonmaak BV",
                       "werkgever_adres": "Teststraat 12, 9999 XX Voorbeeldstad",
                       "bedrag_per_maand": 1245.5, "sinds": "2023-03-01"}],
        "uitkeringen": []
    });
    let entry = serde_json::json!({"soort": "WIA", "bedrag_per_maand": 987.25,
        "ingangsdatum": "2024-06-01", "arbeidsongeschiktheidspercentage": 55,
        "medische_reden": "Fictieve testdiagnose: chronische rugklachten (synthetisch)"});
    loop {
        let text = serde_json::to_vec(&doc).expect("serialisable");
        if text.len() >= bytes {
            return text;
        }
        uitkeringen.push(entry.clone());
        doc["uitkeringen"] = serde_json::Value::Array(uitkeringen.clone());
    }
}
