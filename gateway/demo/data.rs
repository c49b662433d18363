//! Synthetic data served by the demo's built-in mock chain partners.
//!
//! Everything in this module is obviously fake: persons are identified by
//! BSNs from the test range `9999xxxxx` (all passing the elfproef), names are
//! variations on "Voorbeeld"/"Testpersoon", companies are "Voorbeeld ... BV"
//! and addresses are in the "Teststraat". Field names are Dutch, because the
//! partners being imitated are Dutch organisations.
//!
//! The mock partners deliberately return *more* than a municipality may see
//! (medical reasons at UWV, offence details at CJIB, care content at
//! Jeugdhulp): withholding those fields is the gateway's job, not the
//! partner's. Likewise the CJIB mock registers any well-formed time-out
//! (opschorting) request for claims of the person: the 4-months rule and the
//! refusal of strafrechtelijke claims are enforced by the gateway, so a
//! correctly labelled strafrechtelijk claim is accepted here.
//!
//! The CJIB mock does check what only the partner can know: every entry of
//! `vorderingen` (`{"vordering_id": ..., "categorie": ...}`) must name a claim
//! of this person *with the category CJIB has registered for it*. A caller
//! therefore cannot get a strafrechtelijke claim suspended by labelling it
//! "verkeersboete".
//!
//! UWV and SVB take a simpler time-out (`POST /v1/opschortingen` with `bsn`, `einddatum`,
//! `reden`): it suspends the collection of all their claims on the person.
//!
//! The national escalation team (`escalatieteam`, `POST /v1/escalaties`) receives a stalled
//! case with `bsn` and `lokale_analyse` (`problemen`, `ingezette_hulp`, `knelpunt`, `advies`)
//! and answers 201 with `escalatie_id`, `status` `ontvangen` and `ontvangen_op` (today). That
//! a local time-out is already in force is the gateway's to check (case register).
//!
//! Demo contract:
//! - `999990019` is known at every partner;
//! - `999990020` is known at UWV only (404 elsewhere, the escalation team included).
//!
//! Status codes: unknown partner or path → 404; wrong method → 405; person
//! not known at the partner → 404 `{"fout": "persoon niet bekend"}`;
//! malformed POST body (no JSON, missing/mistyped fields, `vorderingen` not a
//! list of objects with string fields `vordering_id` and `categorie`,
//! unparseable `einddatum`) → 400; well-formed but unacceptable request (empty
//! `vorderingen`, duplicate or foreign `vordering_id`, `categorie` differing
//! from CJIB's registration, empty `reden`) → 422. A registered time-out
//! answers 201 with `opschorting_id`, `status`, `bsn`, `vorderingen` (with
//! CJIB's categories), `einddatum` and `reden`.

#[cfg(test)]
mod tests;

#[cfg(test)]
#[path = "data/escalatie_tests.rs"]
mod escalatie_tests;

use http::{Method, StatusCode};
use serde_json::{json, Value};

/// The answer of a mock partner: status and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct MockAnswer {
    /// HTTP status code of the answer.
    pub status: StatusCode,
    /// JSON body of the answer.
    pub body: serde_json::Value,
}

/// Answers a request to one of the mock partners.
///
/// `partner` is one of `"uwv"`, `"svb"`, `"cjib"`, `"jeugdhulp"`, `"escalatieteam"`; `path` is
/// the partner-side path (e.g. `"/v1/personen/999990019/inkomen"`, no query);
/// `body` the request body bytes.
pub fn answer(partner: &str, method: &Method, path: &str, body: &[u8]) -> MockAnswer {
    // Be lenient towards a query string or fragment that slipped through.
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let Some(rest) = path.strip_prefix('/') else {
        return onbekend_pad(partner);
    };
    let segmenten: Vec<&str> = rest.split('/').collect();

    match (partner, segmenten.as_slice()) {
        ("uwv", ["v1", "personen", bsn, "inkomen"]) => lees_persoon(method, uwv_inkomen(), bsn),
        ("svb", ["v1", "personen", bsn, "kinderbijslag"]) => {
            lees_persoon(method, svb_kinderbijslag(), bsn)
        }
        ("cjib", ["v1", "personen", bsn, "vorderingen"]) => {
            lees_persoon(method, cjib_vorderingen(), bsn)
        }
        ("cjib", ["v1", "opschortingen"]) => {
            if *method == Method::POST {
                registreer_opschorting(body)
            } else {
                methode_niet_toegestaan()
            }
        }
        ("uwv", ["v1", "opschortingen"]) => {
            if *method == Method::POST {
                registreer_invordering_opschorting(uwv_inkomen(), body)
            } else {
                methode_niet_toegestaan()
            }
        }
        ("svb", ["v1", "opschortingen"]) => {
            if *method == Method::POST {
                registreer_invordering_opschorting(svb_kinderbijslag(), body)
            } else {
                methode_niet_toegestaan()
            }
        }
        ("jeugdhulp", ["v1", "jeugdigen", bsn, "trajecten"]) => {
            lees_persoon(method, jeugdhulp_trajecten(), bsn)
        }
        ("escalatieteam", ["v1", "escalaties"]) => {
            if *method == Method::POST {
                registreer_escalatie(body)
            } else {
                methode_niet_toegestaan()
            }
        }
        _ => onbekend_pad(partner),
    }
}

// ---------------------------------------------------------------------------
// Data, one `json!` literal per person.
// ---------------------------------------------------------------------------

/// UWV: income from employment and benefits.
fn uwv_inkomen() -> Vec<Value> {
    vec![
        json!({
            "bsn": "999990019",
            "inkomsten": [
                {
                    "soort": "loon",
                    "werkgever": "Voorbeeld Schoonmaak BV",
                    "werkgever_adres": "Teststraat 12, 9999 XX Voorbeeldstad",
                    "bedrag_per_maand": 1245.5,
                    "sinds": "2023-03-01"
                }
            ],
            "uitkeringen": [
                {
                    "soort": "WIA",
                    "bedrag_per_maand": 987.25,
                    "ingangsdatum": "2024-06-01",
                    "arbeidsongeschiktheidspercentage": 55,
                    "medische_reden": "Fictieve testdiagnose: chronische rugklachten na hernia-operatie, beperkt belastbaar (synthetische gegevens)"
                }
            ]
        }),
        json!({
            "bsn": "999990020",
            "inkomsten": [],
            "uitkeringen": [
                {
                    "soort": "WW",
                    "bedrag_per_maand": 1412.75,
                    "ingangsdatum": "2026-01-15",
                    "einddatum": "2026-10-14"
                }
            ]
        }),
    ]
}

/// SVB: child benefit (kinderbijslag).
fn svb_kinderbijslag() -> Vec<Value> {
    vec![json!({
        "bsn": "999990019",
        "recht_op_kinderbijslag": true,
        "aantal_kinderen": 2,
        "kinderen": [
            {
                "bsn": "999900006",
                "geboortejaar": 2016,
                "bedrag_per_kwartaal": 299.72
            },
            {
                "bsn": "999900018",
                "geboortejaar": 2019,
                "bedrag_per_kwartaal": 299.72
            }
        ],
        "volgende_betaling": "2026-07-01"
    })]
}

/// CJIB: outstanding claims (vorderingen), one of each category.
fn cjib_vorderingen() -> Vec<Value> {
    vec![json!({
        "bsn": "999990019",
        "vorderingen": [
            {
                "vordering_id": "CJIB-2026-000123",
                "categorie": "verkeersboete",
                "omschrijving": "Snelheidsovertreding binnen de bebouwde kom, Teststraat Voorbeeldstad",
                "oorspronkelijk_bedrag": 139.0,
                "openstaand_bedrag": 139.0,
                "status": "openstaand"
            },
            {
                "vordering_id": "CJIB-2025-004711",
                "categorie": "administratief",
                "omschrijving": "Administratiekosten en verhoging wegens te late betaling",
                "oorspronkelijk_bedrag": 412.0,
                "openstaand_bedrag": 250.0,
                "status": "betalingsregeling"
            },
            {
                "vordering_id": "CJIB-2024-018842",
                "categorie": "strafrechtelijk",
                "omschrijving": "Geldboete opgelegd bij strafvonnis",
                "oorspronkelijk_bedrag": 1000.0,
                "openstaand_bedrag": 850.0,
                "status": "openstaand",
                "delict_omschrijving": "Fictief testdelict: winkeldiefstal in vereniging bij Voorbeeld Supermarkt BV, Teststraat 1 (synthetische gegevens)",
                "vonnisdatum": "2024-11-14"
            }
        ]
    })]
}

/// Jeugdhulp: care trajectories of a young person.
fn jeugdhulp_trajecten() -> Vec<Value> {
    vec![json!({
        "bsn": "999990019",
        "trajecten": [
            {
                "aanbieder": "Voorbeeld Jeugdzorg BV",
                "soort_hulp": "ambulante jeugdhulp",
                "startdatum": "2025-09-01",
                "einddatum": null,
                "zorginhoud": "Fictieve testdiagnose: angststoornis; behandeling: wekelijkse cognitieve gedragstherapie (synthetische gegevens)",
                "behandelaar": "drs. T. Testpersoon"
            },
            {
                "aanbieder": "Stichting Testzorg Jeugd",
                "soort_hulp": "opvoedondersteuning",
                "startdatum": "2024-02-01",
                "einddatum": "2024-12-31",
                "zorginhoud": "Fictief: gezinsbegeleiding bij opvoedvragen, tien huisbezoeken aan de Teststraat (synthetische gegevens)",
                "behandelaar": "J. Voorbeeld-de Proef"
            }
        ]
    })]
}

// ---------------------------------------------------------------------------
// Request handling.
// ---------------------------------------------------------------------------

fn fout(status: StatusCode, melding: impl Into<String>) -> MockAnswer {
    MockAnswer {
        status,
        body: json!({ "fout": melding.into() }),
    }
}

fn onbekend_pad(partner: &str) -> MockAnswer {
    match partner {
        "uwv" | "svb" | "cjib" | "jeugdhulp" | "escalatieteam" => {
            fout(StatusCode::NOT_FOUND, "onbekend pad")
        }
        _ => fout(StatusCode::NOT_FOUND, "onbekende partner"),
    }
}

fn methode_niet_toegestaan() -> MockAnswer {
    fout(StatusCode::METHOD_NOT_ALLOWED, "methode niet toegestaan")
}

fn persoon_niet_bekend() -> MockAnswer {
    fout(StatusCode::NOT_FOUND, "persoon niet bekend")
}

fn zoek_persoon(personen: Vec<Value>, bsn: &str) -> Option<Value> {
    personen
        .into_iter()
        .find(|p| p.get("bsn").and_then(Value::as_str) == Some(bsn))
}

fn lees_persoon(method: &Method, personen: Vec<Value>, bsn: &str) -> MockAnswer {
    if *method != Method::GET {
        return methode_niet_toegestaan();
    }
    match zoek_persoon(personen, bsn) {
        Some(body) => MockAnswer {
            status: StatusCode::OK,
            body,
        },
        None => persoon_niet_bekend(),
    }
}

/// One entry of `vorderingen` in an opschorting request.
struct GevraagdeVordering<'a> {
    vordering_id: &'a str,
    categorie: &'a str,
}

/// Parses `{"vordering_id": "...", "categorie": "..."}`; other fields are ignored.
fn lees_gevraagde_vordering(waarde: &Value) -> Option<GevraagdeVordering<'_>> {
    let velden = waarde.as_object()?;
    Some(GevraagdeVordering {
        vordering_id: velden.get("vordering_id")?.as_str()?,
        categorie: velden.get("categorie")?.as_str()?,
    })
}

/// CJIB `POST /v1/opschortingen`: register a time-out for some claims.
///
/// Body: `bsn`, `vorderingen` (list of `{vordering_id, categorie}`),
/// `einddatum` (`JJJJ-MM-DD`) and `reden`. Each claim must belong to the
/// person and carry the category CJIB registered for it.
fn registreer_opschorting(body: &[u8]) -> MockAnswer {
    let bad = |melding: &str| fout(StatusCode::BAD_REQUEST, melding);
    let onverwerkbaar = |melding: String| fout(StatusCode::UNPROCESSABLE_ENTITY, melding);

    let Ok(verzoek) = serde_json::from_slice::<Value>(body) else {
        return bad("verzoek is geen geldige JSON");
    };
    let Some(velden) = verzoek.as_object() else {
        return bad("verzoek moet een JSON-object zijn");
    };
    let Some(bsn) = velden.get("bsn").and_then(Value::as_str) else {
        return bad("veld 'bsn' ontbreekt of is geen tekst");
    };
    let Some(gevraagd) = velden
        .get("vorderingen")
        .and_then(Value::as_array)
        .and_then(|lijst| {
            lijst
                .iter()
                .map(lees_gevraagde_vordering)
                .collect::<Option<Vec<GevraagdeVordering>>>()
        })
    else {
        return bad(
            "veld 'vorderingen' ontbreekt of is geen lijst met objecten \
             met de tekstvelden 'vordering_id' en 'categorie'",
        );
    };
    let Some(einddatum) = velden.get("einddatum").and_then(Value::as_str) else {
        return bad("veld 'einddatum' ontbreekt of is geen tekst");
    };
    let Some(reden) = velden.get("reden").and_then(Value::as_str) else {
        return bad("veld 'reden' ontbreekt of is geen tekst");
    };
    if !is_geldige_datum(einddatum) {
        return bad("veld 'einddatum' is geen geldige datum (JJJJ-MM-DD)");
    }

    let Some(persoon) = zoek_persoon(cjib_vorderingen(), bsn) else {
        return persoon_niet_bekend();
    };
    // CJIB's own registration: (vordering_id, categorie) per claim.
    let geregistreerd: Vec<(&str, &str)> = persoon
        .get("vorderingen")
        .and_then(Value::as_array)
        .map(|lijst| {
            lijst
                .iter()
                .filter_map(|v| {
                    let id = v.get("vordering_id").and_then(Value::as_str)?;
                    let categorie = v.get("categorie").and_then(Value::as_str)?;
                    Some((id, categorie))
                })
                .collect()
        })
        .unwrap_or_default();

    if gevraagd.is_empty() {
        return onverwerkbaar("veld 'vorderingen' mag niet leeg zijn".to_owned());
    }
    let mut ids: Vec<&str> = Vec::with_capacity(gevraagd.len());
    let mut vorderingen: Vec<Value> = Vec::with_capacity(gevraagd.len());
    for g in &gevraagd {
        let id = g.vordering_id;
        if ids.contains(&id) {
            return onverwerkbaar(format!("vordering {id} komt dubbel voor"));
        }
        let Some(&(_, categorie)) = geregistreerd.iter().find(|(eigen, _)| *eigen == id) else {
            return onverwerkbaar(format!("vordering {id} hoort niet bij deze persoon"));
        };
        if g.categorie != categorie {
            return onverwerkbaar(format!(
                "categorie van vordering {id} komt niet overeen met de registratie bij het CJIB"
            ));
        }
        ids.push(id);
        vorderingen.push(json!({ "vordering_id": id, "categorie": categorie }));
    }
    if reden.trim().is_empty() {
        return onverwerkbaar("veld 'reden' mag niet leeg zijn".to_owned());
    }

    MockAnswer {
        status: StatusCode::CREATED,
        body: json!({
            "opschorting_id": opschorting_id(bsn, &ids, einddatum, reden),
            "status": "geregistreerd",
            "bsn": bsn,
            "vorderingen": vorderingen,
            "einddatum": einddatum,
            "reden": reden
        }),
    }
}

/// UWV and SVB: a time-out suspends the collection (invordering) of all their claims on the
/// person, e.g. recovered benefits (terugvorderingen). Body: `bsn`, `einddatum`, `reden`.
/// As at CJIB, the 4-months rule is the gateway's to enforce.
fn registreer_invordering_opschorting(personen: Vec<Value>, body: &[u8]) -> MockAnswer {
    let ongeldig = |melding: &str| fout(StatusCode::BAD_REQUEST, melding);
    let Ok(verzoek) = serde_json::from_slice::<Value>(body) else {
        return ongeldig("verzoek is geen geldige JSON");
    };
    let tekst = |veld: &str| verzoek.get(veld).and_then(Value::as_str);
    let (Some(bsn), Some(einddatum), Some(reden)) =
        (tekst("bsn"), tekst("einddatum"), tekst("reden"))
    else {
        return ongeldig("velden 'bsn', 'einddatum' en 'reden' zijn verplicht en tekst");
    };
    if !is_geldige_datum(einddatum) {
        return ongeldig("veld 'einddatum' is geen geldige datum (JJJJ-MM-DD)");
    }
    if zoek_persoon(personen, bsn).is_none() {
        return persoon_niet_bekend();
    }
    if reden.trim().is_empty() {
        return fout(
            StatusCode::UNPROCESSABLE_ENTITY,
            "veld 'reden' mag niet leeg zijn",
        );
    }
    MockAnswer {
        status: StatusCode::CREATED,
        body: json!({
            "opschorting_id": opschorting_id(bsn, &[], einddatum, reden),
            "status": "geregistreerd",
            "betreft": "invordering van alle vorderingen op deze persoon",
            "bsn": bsn,
            "einddatum": einddatum,
            "reden": reden,
        }),
    }
}

/// The national escalation team, `POST /v1/escalaties`: a case that stalled at a national
/// executor, with the local analysis and advice (Verkenning 2019 §3.2.2).
///
/// Body: `bsn` and `lokale_analyse` with `problemen` and `ingezette_hulp` (lists of text) and
/// `knelpunt` and `advies` (text). Missing or mistyped fields → 400; a person the demo's
/// partners do not all know → 404; an empty list or blank text → 422. The lengths the schema
/// sets, and that a local time-out is in force, are the gateway's to enforce.
fn registreer_escalatie(body: &[u8]) -> MockAnswer {
    let ongeldig = |melding: &str| fout(StatusCode::BAD_REQUEST, melding);
    let onverwerkbaar = |melding: &str| fout(StatusCode::UNPROCESSABLE_ENTITY, melding);
    let Ok(verzoek) = serde_json::from_slice::<Value>(body) else {
        return ongeldig("verzoek is geen geldige JSON");
    };
    let Some(bsn) = verzoek.get("bsn").and_then(Value::as_str) else {
        return ongeldig("veld 'bsn' ontbreekt of is geen tekst");
    };
    let Some(analyse) = verzoek.get("lokale_analyse").and_then(Value::as_object) else {
        return ongeldig("veld 'lokale_analyse' ontbreekt of is geen object");
    };
    let lijst = |veld: &str| -> Option<Vec<&str>> {
        analyse
            .get(veld)?
            .as_array()?
            .iter()
            .map(Value::as_str)
            .collect()
    };
    let tekst = |veld: &str| analyse.get(veld).and_then(Value::as_str);
    let (Some(problemen), Some(hulp), Some(knelpunt), Some(advies)) = (
        lijst("problemen"),
        lijst("ingezette_hulp"),
        tekst("knelpunt"),
        tekst("advies"),
    ) else {
        return ongeldig(
            "'lokale_analyse' moet 'problemen' en 'ingezette_hulp' (lijsten met tekst) \
             en 'knelpunt' en 'advies' (tekst) bevatten",
        );
    };
    // Known to the team only when known at every demo partner: 999990019, not 999990020.
    let bekend = [
        uwv_inkomen(),
        svb_kinderbijslag(),
        cjib_vorderingen(),
        jeugdhulp_trajecten(),
    ]
    .into_iter()
    .all(|personen| zoek_persoon(personen, bsn).is_some());
    if !bekend {
        return persoon_niet_bekend();
    }
    let leeg = |t: &&str| t.trim().is_empty();
    if problemen.is_empty() || problemen.iter().any(leeg) {
        return onverwerkbaar("'problemen' moet ten minste één niet-leeg probleem noemen");
    }
    if hulp.is_empty() || hulp.iter().any(leeg) {
        return onverwerkbaar(
            "'ingezette_hulp' moet ten minste één niet-lege vorm van hulp noemen",
        );
    }
    if leeg(&knelpunt) || leeg(&advies) {
        return onverwerkbaar("'knelpunt' en 'advies' mogen niet leeg zijn");
    }
    MockAnswer {
        status: StatusCode::CREATED,
        body: json!({
            // The parsed body, written out again: the same request gives the same id
            // whatever its layout.
            "escalatie_id": kenmerk("ESC", [verzoek.to_string().as_str()]),
            "status": "ontvangen",
            "ontvangen_op": vandaag(),
        }),
    }
}

/// Today (UTC, as the gateway decides dates) as `JJJJ-MM-DD`.
fn vandaag() -> String {
    let dag = crate::policy::today();
    format!(
        "{:04}-{:02}-{:02}",
        dag.year(),
        u8::from(dag.month()),
        dag.day()
    )
}

fn opschorting_id(bsn: &str, ids: &[&str], einddatum: &str, reden: &str) -> String {
    let delen = std::iter::once(bsn)
        .chain(ids.iter().copied())
        .chain([einddatum, reden]);
    kenmerk("OPS", delen)
}

/// Deterministic id derived from the request: `<prefix>-` and 12 hex digits of a 64-bit
/// FNV-1a hash over `delen`.
fn kenmerk<'a>(prefix: &str, delen: impl IntoIterator<Item = &'a str>) -> String {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = FNV_OFFSET;
    for deel in delen {
        // The 0x1f separator keeps ("ab","c") and ("a","bc") apart.
        for byte in deel.bytes().chain(std::iter::once(0x1f)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(FNV_PRIME);
        }
    }
    format!("{prefix}-{:012X}", hash >> 16)
}

/// Tiny calendar check for `YYYY-MM-DD` (Gregorian, leap years included).
fn is_geldige_datum(tekst: &str) -> bool {
    let bytes = tekst.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return false;
    }
    let getal = |deel: &[u8]| -> Option<u32> {
        deel.iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    let (Some(jaar), Some(maand), Some(dag)) = (
        getal(&bytes[0..4]),
        getal(&bytes[5..7]),
        getal(&bytes[8..10]),
    ) else {
        return false;
    };
    let schrikkeljaar = (jaar % 4 == 0 && jaar % 100 != 0) || jaar % 400 == 0;
    let dagen_in_maand = match maand {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if schrikkeljaar => 29,
        2 => 28,
        _ => return false,
    };
    jaar >= 1 && (1..=dagen_in_maand).contains(&dag)
}
