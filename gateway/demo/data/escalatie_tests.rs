//! Unit tests of the national escalation team's mock (`POST /v1/escalaties`): its answers,
//! and that they fit the partner's schemas.

use super::tests::get;
use super::*;

fn escalatieverzoek() -> Value {
    json!({
        "bsn": "999990019",
        "lokale_analyse": {
            "problemen": ["problematische schulden", "dreigende huisuitzetting"],
            "ingezette_hulp": ["schuldhulpverlening", "time-out bij UWV en CJIB"],
            "knelpunt": "De terugvordering van UWV loopt door na de lokale time-out; lokaal is geen \
                         afspraak over matiging mogelijk.",
            "advies": "Terugvordering matigen tot de beslagvrije voet en de invordering laten \
                       rusten tot de schuldenregeling rond is."
        }
    })
}

fn post_escalatie(verzoek: &Value) -> MockAnswer {
    let body = serde_json::to_vec(verzoek).expect("serialiseerbaar");
    answer("escalatieteam", &Method::POST, "/v1/escalaties", &body)
}

fn strikt_schema(tekst: &str) -> crate::minimise::StrictSchema {
    let schema: Value = serde_json::from_str(tekst).expect("schema is JSON");
    crate::minimise::StrictSchema::compile(&schema).expect("bruikbaar schema")
}

#[test]
fn escalatie_ontvangen_en_deterministisch() {
    let a = post_escalatie(&escalatieverzoek());
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    assert_eq!(a.body["status"], "ontvangen");
    let id = a.body["escalatie_id"].as_str().expect("id");
    assert!(id.starts_with("ESC-"), "{id}");
    assert_eq!(id.len(), "ESC-".len() + 12);
    assert!(id["ESC-".len()..]
        .bytes()
        .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c)));
    let vandaag = crate::policy::today();
    assert_eq!(
        a.body["ontvangen_op"],
        format!(
            "{:04}-{:02}-{:02}",
            vandaag.year(),
            u8::from(vandaag.month()),
            vandaag.day()
        )
    );
    // Nothing of the request is echoed: the answer is the receipt only.
    assert_eq!(a.body.as_object().expect("object").len(), 3);

    // Same request (whatever its layout), same id; another advice, another id.
    let opgemaakt = serde_json::to_vec_pretty(&escalatieverzoek()).unwrap();
    let b = answer("escalatieteam", &Method::POST, "/v1/escalaties", &opgemaakt);
    assert_eq!(b.body["escalatie_id"], a.body["escalatie_id"]);
    let mut ander = escalatieverzoek();
    ander["lokale_analyse"]["advies"] = json!("Invordering door UWV een jaar laten rusten.");
    let c = post_escalatie(&ander);
    assert_eq!(c.status, StatusCode::CREATED);
    assert_ne!(c.body["escalatie_id"], a.body["escalatie_id"]);
}

/// The mock's answer is what the operation's response schema allows, and the test request is
/// what its request schema allows: the gateway validates both strictly.
#[test]
fn escalatie_past_bij_de_schemas() {
    let verzoek = strikt_schema(include_str!(
        "../../../schemas/escalatie.request.schema.json"
    ));
    let antwoord = strikt_schema(include_str!(
        "../../../schemas/escalatie.response.schema.json"
    ));
    assert!(verzoek.is_valid(&escalatieverzoek()));
    let a = post_escalatie(&escalatieverzoek());
    assert!(antwoord.is_valid(&a.body), "{}", a.body);

    // The request schema is as strict as it says: no analysis, an empty list, a short advice,
    // an extra field each make the request invalid.
    let mut zonder = escalatieverzoek();
    zonder.as_object_mut().unwrap().remove("lokale_analyse");
    let mut leeg = escalatieverzoek();
    leeg["lokale_analyse"]["problemen"] = json!([]);
    let mut kort = escalatieverzoek();
    kort["lokale_analyse"]["advies"] = json!("te kort");
    let mut extra = escalatieverzoek();
    extra["lokale_analyse"]["diagnose"] = json!("niet gevraagd");
    for (naam, v) in [
        ("zonder analyse", zonder),
        ("leeg", leeg),
        ("kort", kort),
        ("extra", extra),
    ] {
        assert!(!verzoek.is_valid(&v), "{naam}");
    }
}

#[test]
fn escalatie_foutgevallen() {
    // Only POST.
    for methode in [Method::GET, Method::PUT, Method::DELETE] {
        let a = answer("escalatieteam", &methode, "/v1/escalaties", b"");
        assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{methode}");
    }
    let a = get("escalatieteam", "/v1/escalaties/ESC-000000000000");
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.body, json!({ "fout": "onbekend pad" }));

    // Malformed: 400.
    let a = answer(
        "escalatieteam",
        &Method::POST,
        "/v1/escalaties",
        b"{niet json",
    );
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let mut misvormd = Vec::new();
    for pad in [
        &["bsn"][..],
        &["lokale_analyse"],
        &["lokale_analyse", "problemen"],
        &["lokale_analyse", "ingezette_hulp"],
        &["lokale_analyse", "knelpunt"],
        &["lokale_analyse", "advies"],
    ] {
        let mut v = escalatieverzoek();
        let (veld, ouders) = pad.split_last().unwrap();
        let mut doel = &mut v;
        for ouder in ouders {
            doel = &mut doel[*ouder];
        }
        doel.as_object_mut().unwrap().remove(*veld);
        misvormd.push(v);
    }
    let mut geen_tekst = escalatieverzoek();
    geen_tekst["lokale_analyse"]["problemen"] = json!(["schulden", 3]);
    misvormd.push(geen_tekst);
    for v in misvormd {
        let a = post_escalatie(&v);
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{v}");
        assert!(a.body["fout"].is_string());
    }

    // 999990020 is known at UWV only; 999900031 nowhere.
    for bsn in ["999990020", "999900031"] {
        let mut v = escalatieverzoek();
        v["bsn"] = json!(bsn);
        let a = post_escalatie(&v);
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{bsn}");
        assert_eq!(a.body, json!({ "fout": "persoon niet bekend" }));
    }

    // Well-formed but empty: 422.
    for (veld, waarde) in [
        ("problemen", json!([])),
        ("ingezette_hulp", json!([" "])),
        ("advies", json!("  ")),
    ] {
        let mut v = escalatieverzoek();
        v["lokale_analyse"][veld] = waarde;
        let a = post_escalatie(&v);
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{veld}");
    }
}
