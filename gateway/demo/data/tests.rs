//! Unit tests of the mock partners: the demo contract, the data's BSNs, status codes and
//! time-out (opschorting) requests.

use super::*;

const PARTNERS: [&str; 4] = ["uwv", "svb", "cjib", "jeugdhulp"];

fn elfproef(bsn: &str) -> bool {
    let cijfers: Vec<i64> = bsn
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|c| i64::from(c - b'0'))
        .collect();
    if bsn.len() != 9 || cijfers.len() != 9 {
        return false;
    }
    let som: i64 = cijfers
        .iter()
        .zip([9, 8, 7, 6, 5, 4, 3, 2, -1])
        .map(|(c, w)| c * w)
        .sum();
    som % 11 == 0
}

pub(super) fn get(partner: &str, path: &str) -> MockAnswer {
    answer(partner, &Method::GET, path, b"")
}

fn lees_pad(partner: &str, bsn: &str) -> String {
    match partner {
        "uwv" => format!("/v1/personen/{bsn}/inkomen"),
        "svb" => format!("/v1/personen/{bsn}/kinderbijslag"),
        "cjib" => format!("/v1/personen/{bsn}/vorderingen"),
        "jeugdhulp" => format!("/v1/jeugdigen/{bsn}/trajecten"),
        other => panic!("onbekende partner {other}"),
    }
}

fn post_opschorting(verzoek: &Value) -> MockAnswer {
    let body = serde_json::to_vec(verzoek).expect("serialiseerbaar");
    answer("cjib", &Method::POST, "/v1/opschortingen", &body)
}

/// `vorderingen` list of `{vordering_id, categorie}` objects.
fn vorderingen(paren: &[(&str, &str)]) -> Value {
    paren
        .iter()
        .map(|(id, categorie)| json!({ "vordering_id": id, "categorie": categorie }))
        .collect()
}

fn geldig_verzoek() -> Value {
    json!({
        "bsn": "999990019",
        "vorderingen": vorderingen(&[
            ("CJIB-2026-000123", "verkeersboete"),
            ("CJIB-2025-004711", "administratief"),
        ]),
        "einddatum": "2026-09-30",
        "reden": "schuldhulpverlening gestart"
    })
}

fn alle_gegevens() -> Vec<(&'static str, Vec<Value>)> {
    vec![
        ("uwv", uwv_inkomen()),
        ("svb", svb_kinderbijslag()),
        ("cjib", cjib_vorderingen()),
        ("jeugdhulp", jeugdhulp_trajecten()),
    ]
}

/// Collects every `bsn` field and every 9-digit string anywhere in `v`.
fn verzamel_bsns(v: &Value, uit: &mut Vec<String>) {
    match v {
        Value::String(s) if s.len() == 9 && s.bytes().all(|c| c.is_ascii_digit()) => {
            uit.push(s.clone());
        }
        Value::Number(n) if n.as_u64().is_some_and(|n| n >= 100_000_000) => {
            uit.push(n.to_string());
        }
        Value::Array(lijst) => lijst.iter().for_each(|x| verzamel_bsns(x, uit)),
        Value::Object(velden) => {
            for (sleutel, waarde) in velden {
                if sleutel == "bsn" {
                    uit.push(waarde.as_str().unwrap_or("<geen tekst>").to_owned());
                }
                verzamel_bsns(waarde, uit);
            }
        }
        _ => {}
    }
}

#[test]
fn elfproef_helper_werkt() {
    for bsn in [
        "999990019",
        "999990020",
        "999900006",
        "999900018",
        "999900031",
        "999900043",
        "999900055",
        "999900067",
    ] {
        assert!(elfproef(bsn), "{bsn} zou de elfproef moeten halen");
    }
    for bsn in ["999990018", "123456789", "99999001", "99999001a", ""] {
        assert!(!elfproef(bsn), "{bsn} zou de elfproef niet moeten halen");
    }
}

#[test]
fn elke_bsn_in_de_gegevens_haalt_de_elfproef_en_is_testbereik() {
    let mut bsns = Vec::new();
    for (_, personen) in alle_gegevens() {
        for persoon in &personen {
            verzamel_bsns(persoon, &mut bsns);
        }
    }
    assert!(bsns.len() >= 6, "te weinig BSN's gevonden: {bsns:?}");
    for bsn in &bsns {
        assert!(elfproef(bsn), "{bsn} haalt de elfproef niet");
        assert!(bsn.starts_with("9999"), "{bsn} ligt niet in het testbereik");
    }
}

#[test]
fn eerste_demopersoon_bekend_bij_elke_partner() {
    for partner in PARTNERS {
        let a = get(partner, &lees_pad(partner, "999990019"));
        assert_eq!(a.status, StatusCode::OK, "{partner}");
        assert_eq!(a.body["bsn"], "999990019", "{partner}");
    }
}

#[test]
fn tweede_demopersoon_alleen_bij_uwv() {
    for partner in PARTNERS {
        let a = get(partner, &lees_pad(partner, "999990020"));
        if partner == "uwv" {
            assert_eq!(a.status, StatusCode::OK);
        } else {
            assert_eq!(a.status, StatusCode::NOT_FOUND, "{partner}");
            assert_eq!(a.body, json!({ "fout": "persoon niet bekend" }));
        }
    }
}

#[test]
fn onbekende_persoon_geeft_404() {
    for partner in PARTNERS {
        let a = get(partner, &lees_pad(partner, "999900031"));
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{partner}");
        assert_eq!(a.body, json!({ "fout": "persoon niet bekend" }));
    }
}

#[test]
fn onbekende_partner_of_pad_geeft_404() {
    let a = get("belastingdienst", "/v1/personen/999990019/inkomen");
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert!(a.body["fout"].is_string());

    for (partner, pad) in [
        ("uwv", "/v1/personen/999990019/kinderbijslag"),
        ("uwv", "/v1/personen/999990019"),
        ("uwv", "/v2/personen/999990019/inkomen"),
        ("uwv", "v1/personen/999990019/inkomen"),
        ("uwv", "/v1/personen/999990019/inkomen/extra"),
        ("svb", "/"),
        ("svb", ""),
        ("cjib", "/v1/opschortingen/OPS-1"),
        ("jeugdhulp", "/v1/personen/999990019/trajecten"),
    ] {
        let a = get(partner, pad);
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{partner} {pad}");
        assert!(a.body["fout"].is_string(), "{partner} {pad}");
    }
}

#[test]
fn verkeerde_methode_geeft_405() {
    for partner in PARTNERS {
        let pad = lees_pad(partner, "999990019");
        for methode in [Method::POST, Method::PUT, Method::DELETE] {
            let a = answer(partner, &methode, &pad, b"{}");
            assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{partner}");
            assert!(a.body["fout"].is_string());
        }
    }
    let a = get("cjib", "/v1/opschortingen");
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[test]
fn uwv_inkomen_met_medische_reden() {
    let a = get("uwv", "/v1/personen/999990019/inkomen");
    assert_eq!(a.status, StatusCode::OK);
    let inkomsten = a.body["inkomsten"].as_array().expect("inkomsten");
    assert_eq!(inkomsten.len(), 1);
    assert_eq!(inkomsten[0]["soort"], "loon");
    assert_eq!(inkomsten[0]["werkgever"], "Voorbeeld Schoonmaak BV");
    assert!(inkomsten[0]["bedrag_per_maand"].is_number());
    assert!(is_geldige_datum(
        inkomsten[0]["sinds"].as_str().expect("sinds")
    ));

    let uitkeringen = a.body["uitkeringen"].as_array().expect("uitkeringen");
    assert_eq!(uitkeringen.len(), 1);
    let wia = &uitkeringen[0];
    assert_eq!(wia["soort"], "WIA");
    assert!(wia["bedrag_per_maand"].is_number());
    assert!(is_geldige_datum(
        wia["ingangsdatum"].as_str().expect("datum")
    ));
    assert!(wia["arbeidsongeschiktheidspercentage"].is_number());
    assert!(!wia["medische_reden"].as_str().expect("medisch").is_empty());

    let b = get("uwv", "/v1/personen/999990020/inkomen");
    assert_eq!(b.status, StatusCode::OK);
    assert_eq!(b.body["inkomsten"], json!([]));
    let uitkeringen = b.body["uitkeringen"].as_array().expect("uitkeringen");
    assert_eq!(uitkeringen.len(), 1);
    assert_eq!(uitkeringen[0]["soort"], "WW");
    assert!(uitkeringen[0].get("medische_reden").is_none());
}

#[test]
fn svb_kinderbijslag_vorm() {
    let a = get("svb", "/v1/personen/999990019/kinderbijslag");
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["recht_op_kinderbijslag"], true);
    let kinderen = a.body["kinderen"].as_array().expect("kinderen");
    assert_eq!(a.body["aantal_kinderen"], json!(kinderen.len()));
    for kind in kinderen {
        assert!(elfproef(kind["bsn"].as_str().expect("bsn")));
        assert!(kind["geboortejaar"].is_u64());
        assert!(kind["bedrag_per_kwartaal"].is_number());
    }
    let volgende = a.body["volgende_betaling"].as_str().expect("datum");
    assert!(is_geldige_datum(volgende));
}

#[test]
fn cjib_vorderingen_een_per_categorie() {
    let a = get("cjib", "/v1/personen/999990019/vorderingen");
    assert_eq!(a.status, StatusCode::OK);
    let vorderingen = a.body["vorderingen"].as_array().expect("vorderingen");
    assert_eq!(vorderingen.len(), 3);
    let mut categorieen: Vec<&str> = vorderingen
        .iter()
        .map(|v| v["categorie"].as_str().expect("categorie"))
        .collect();
    categorieen.sort_unstable();
    assert_eq!(
        categorieen,
        ["administratief", "strafrechtelijk", "verkeersboete"]
    );
    for v in vorderingen {
        assert!(v["vordering_id"].as_str().expect("id").starts_with("CJIB-"));
        assert!(v["openstaand_bedrag"].is_number());
        assert!(v["oorspronkelijk_bedrag"].is_number());
        assert!(v["status"].is_string());
        let strafrechtelijk = v["categorie"] == "strafrechtelijk";
        assert_eq!(v.get("delict_omschrijving").is_some(), strafrechtelijk);
        assert_eq!(v.get("vonnisdatum").is_some(), strafrechtelijk);
        if strafrechtelijk {
            assert!(!v["delict_omschrijving"]
                .as_str()
                .expect("delict")
                .is_empty());
            assert!(is_geldige_datum(v["vonnisdatum"].as_str().expect("datum")));
        }
    }
}

#[test]
fn jeugdhulp_trajecten_met_zorginhoud() {
    let a = get("jeugdhulp", "/v1/jeugdigen/999990019/trajecten");
    assert_eq!(a.status, StatusCode::OK);
    let trajecten = a.body["trajecten"].as_array().expect("trajecten");
    assert!(!trajecten.is_empty());
    assert!(trajecten.iter().any(|t| t["einddatum"].is_null()));
    for t in trajecten {
        assert!(t["aanbieder"].is_string());
        assert!(t["soort_hulp"].is_string());
        assert!(is_geldige_datum(t["startdatum"].as_str().expect("start")));
        assert!(t["einddatum"].is_null() || t["einddatum"].is_string());
        assert!(!t["zorginhoud"].as_str().expect("zorginhoud").is_empty());
        assert!(!t["behandelaar"].as_str().expect("behandelaar").is_empty());
    }
}

#[test]
fn opschorting_geregistreerd_en_deterministisch() {
    let a = post_opschorting(&geldig_verzoek());
    assert_eq!(a.status, StatusCode::CREATED);
    assert_eq!(a.body["status"], "geregistreerd");
    assert_eq!(a.body["bsn"], "999990019");
    assert_eq!(a.body["vorderingen"], geldig_verzoek()["vorderingen"]);
    assert!(a.body.get("vordering_ids").is_none());
    assert_eq!(a.body["einddatum"], "2026-09-30");
    assert_eq!(a.body["reden"], "schuldhulpverlening gestart");
    let id = a.body["opschorting_id"].as_str().expect("id");
    assert!(id.starts_with("OPS-"));
    assert_eq!(id.len(), "OPS-".len() + 12);

    let b = post_opschorting(&geldig_verzoek());
    assert_eq!(a, b, "zelfde verzoek, zelfde antwoord");

    let mut anders = geldig_verzoek();
    anders["einddatum"] = json!("2026-10-01");
    let c = post_opschorting(&anders);
    assert_eq!(c.status, StatusCode::CREATED);
    assert_ne!(c.body["opschorting_id"], a.body["opschorting_id"]);

    let mut andere_reden = geldig_verzoek();
    andere_reden["reden"] = json!("beslagvrije voet onderzocht");
    let d = post_opschorting(&andere_reden);
    assert_eq!(d.status, StatusCode::CREATED);
    assert_ne!(d.body["opschorting_id"], a.body["opschorting_id"]);

    let mut minder = geldig_verzoek();
    minder["vorderingen"] = vorderingen(&[("CJIB-2026-000123", "verkeersboete")]);
    let e = post_opschorting(&minder);
    assert_eq!(e.status, StatusCode::CREATED);
    assert_ne!(e.body["opschorting_id"], a.body["opschorting_id"]);
}

#[test]
fn opschorting_echoot_alleen_id_en_categorie() {
    // Extra velden per vordering worden genegeerd; het antwoord bevat de
    // registratie van het CJIB.
    let mut verzoek = geldig_verzoek();
    verzoek["vorderingen"] = json!([{
        "vordering_id": "CJIB-2025-004711",
        "categorie": "administratief",
        "opmerking": "genegeerd"
    }]);
    let a = post_opschorting(&verzoek);
    assert_eq!(a.status, StatusCode::CREATED);
    assert_eq!(
        a.body["vorderingen"],
        vorderingen(&[("CJIB-2025-004711", "administratief")])
    );
}

#[test]
fn opschorting_handhaaft_geen_beleidsregels() {
    // Correct gelabelde strafrechtelijke vordering en een einddatum ver
    // weg: de mock accepteert het; de gateway moet dit tegenhouden.
    let a = post_opschorting(&json!({
        "bsn": "999990019",
        "vorderingen": vorderingen(&[("CJIB-2024-018842", "strafrechtelijk")]),
        "einddatum": "2030-12-31",
        "reden": "test"
    }));
    assert_eq!(a.status, StatusCode::CREATED);
    assert_eq!(
        a.body["vorderingen"],
        vorderingen(&[("CJIB-2024-018842", "strafrechtelijk")])
    );
}

#[test]
fn opschorting_misvormd_verzoek_geeft_400() {
    for body in [&b""[..], b"niet json", b"[1,2]", b"\"tekst\"", b"{\"bsn\":"] {
        let a = answer("cjib", &Method::POST, "/v1/opschortingen", body);
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body:?}");
        assert!(a.body["fout"].is_string());
    }
    let mutaties: [(&str, Value); 16] = [
        ("bsn", Value::Null),
        ("bsn", json!(999990019)),
        ("vorderingen", Value::Null),
        ("vorderingen", json!("CJIB-2026-000123")),
        (
            "vorderingen",
            json!({ "vordering_id": "CJIB-2026-000123", "categorie": "verkeersboete" }),
        ),
        ("vorderingen", json!(["CJIB-2026-000123"])),
        ("vorderingen", json!([123])),
        (
            "vorderingen",
            json!([{ "vordering_id": "CJIB-2026-000123" }]),
        ),
        ("vorderingen", json!([{ "categorie": "verkeersboete" }])),
        (
            "vorderingen",
            json!([{ "vordering_id": 123, "categorie": "verkeersboete" }]),
        ),
        (
            "vorderingen",
            json!([{ "vordering_id": "CJIB-2026-000123", "categorie": null }]),
        ),
        (
            "vorderingen",
            json!([{ "vordering_id": "CJIB-2026-000123", "categorie": "verkeersboete" }, "CJIB-2025-004711"]),
        ),
        ("einddatum", json!(20260930)),
        ("reden", Value::Null),
        ("einddatum", json!("30-09-2026")),
        ("einddatum", json!("2026-02-30")),
    ];
    for (veld, waarde) in mutaties {
        let mut verzoek = geldig_verzoek();
        if waarde.is_null() {
            verzoek.as_object_mut().expect("object").remove(veld);
        } else {
            verzoek[veld] = waarde.clone();
        }
        let a = post_opschorting(&verzoek);
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{veld}={waarde}");
        assert!(a.body["fout"].is_string());
    }

    // Het oude formaat (`vordering_ids`) wordt niet meer begrepen.
    let oud = json!({
        "bsn": "999990019",
        "vordering_ids": ["CJIB-2026-000123"],
        "einddatum": "2026-09-30",
        "reden": "schuldhulpverlening gestart"
    });
    assert_eq!(post_opschorting(&oud).status, StatusCode::BAD_REQUEST);
}

#[test]
fn opschorting_onbekende_persoon_geeft_404() {
    for bsn in ["999990020", "999900043"] {
        let mut verzoek = geldig_verzoek();
        verzoek["bsn"] = json!(bsn);
        let a = post_opschorting(&verzoek);
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{bsn}");
        assert_eq!(a.body, json!({ "fout": "persoon niet bekend" }));
    }
}

#[test]
fn opschorting_onverwerkbaar_geeft_422() {
    for (veld, waarde) in [
        ("vorderingen", json!([])),
        (
            "vorderingen",
            vorderingen(&[("CJIB-2026-999999", "verkeersboete")]),
        ),
        (
            "vorderingen",
            vorderingen(&[
                ("CJIB-2026-000123", "verkeersboete"),
                ("CJIB-2099-000001", "administratief"),
            ]),
        ),
        (
            "vorderingen",
            vorderingen(&[
                ("CJIB-2026-000123", "verkeersboete"),
                ("CJIB-2026-000123", "verkeersboete"),
            ]),
        ),
        (
            "vorderingen",
            vorderingen(&[("CJIB-2024-018842", "verkeersboete")]),
        ),
        ("reden", json!("   ")),
    ] {
        let mut verzoek = geldig_verzoek();
        verzoek[veld] = waarde.clone();
        let a = post_opschorting(&verzoek);
        assert_eq!(
            a.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{veld}={waarde}"
        );
        assert!(a.body["fout"].is_string());
    }
}

#[test]
fn opschorting_verkeerde_categorie_geeft_422() {
    // Een strafrechtelijke vordering als verkeersboete (of andersom)
    // aanbieden mag niet: het CJIB kent de echte categorie.
    for (id, categorie) in [
        ("CJIB-2024-018842", "verkeersboete"),
        ("CJIB-2024-018842", "administratief"),
        ("CJIB-2024-018842", "Strafrechtelijk"),
        ("CJIB-2024-018842", ""),
        ("CJIB-2026-000123", "strafrechtelijk"),
        ("CJIB-2025-004711", "verkeersboete"),
    ] {
        let verwacht = json!({
            "fout": format!(
                "categorie van vordering {id} komt niet overeen met de registratie bij het CJIB"
            )
        });
        // Alleen, en achter een correct gelabelde andere vordering.
        let ander = if id == "CJIB-2025-004711" {
            ("CJIB-2026-000123", "verkeersboete")
        } else {
            ("CJIB-2025-004711", "administratief")
        };
        for lijst in [
            vorderingen(&[(id, categorie)]),
            vorderingen(&[ander, (id, categorie)]),
        ] {
            let mut verzoek = geldig_verzoek();
            verzoek["vorderingen"] = lijst.clone();
            let a = post_opschorting(&verzoek);
            assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{lijst}");
            assert_eq!(a.body, verwacht, "{lijst}");
        }
    }
}

#[test]
fn datumcontrole() {
    for goed in [
        "2026-09-30",
        "2024-02-29",
        "2000-02-29",
        "0001-01-01",
        "2026-12-31",
    ] {
        assert!(is_geldige_datum(goed), "{goed}");
    }
    for fout in [
        "",
        "2026-9-30",
        "2026-09-31",
        "2026-13-01",
        "2026-00-10",
        "2026-01-00",
        "2025-02-29",
        "1900-02-29",
        "0000-01-01",
        "2026/09/30",
        "2026-09-30T00:00:00",
        "+026-09-30",
        "２０２６-09-30",
    ] {
        assert!(!is_geldige_datum(fout), "{fout}");
    }
}

#[test]
fn query_wordt_genegeerd() {
    let a = get("uwv", "/v1/personen/999990019/inkomen?x=1");
    assert_eq!(a.status, StatusCode::OK);
}

#[test]
fn uwv_en_svb_registreren_een_opschorting_van_de_invordering() {
    let verzoek = |bsn: &str| {
        json!({"bsn": bsn, "einddatum": "2027-02-15", "reden": "schuldhulpverlening gestart"})
            .to_string()
    };
    for partner in ["uwv", "svb"] {
        let a = answer(
            partner,
            &Method::POST,
            "/v1/opschortingen",
            verzoek("999990019").as_bytes(),
        );
        assert_eq!(a.status, StatusCode::CREATED, "{partner}: {}", a.body);
        assert_eq!(a.body["status"], "geregistreerd");
        assert!(a.body["opschorting_id"]
            .as_str()
            .unwrap()
            .starts_with("OPS-"));
        let a = answer(partner, &Method::GET, "/v1/opschortingen", b"");
        assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
        let a = answer(partner, &Method::POST, "/v1/opschortingen", b"{}");
        assert_eq!(a.status, StatusCode::BAD_REQUEST);
    }
    // 999990020 is known at UWV only.
    let a = answer(
        "svb",
        &Method::POST,
        "/v1/opschortingen",
        verzoek("999990020").as_bytes(),
    );
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let a = answer(
        "uwv",
        &Method::POST,
        "/v1/opschortingen",
        verzoek("999990020").as_bytes(),
    );
    assert_eq!(a.status, StatusCode::CREATED);
}
