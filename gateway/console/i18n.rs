//! The console's words, in Dutch (the default: its readers are Dutch officers) and English
//! (`?lang=en`). One table, so a text cannot exist in one language only.

/// The language a page is rendered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Nl,
    En,
}

impl Lang {
    /// `lang=en` among the query's or form's pairs; Dutch otherwise.
    pub fn from_pairs(pairs: &[(String, String)]) -> Self {
        if pairs.iter().any(|(k, v)| k == "lang" && v == "en") {
            Lang::En
        } else {
            Lang::Nl
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::Nl => "nl",
            Lang::En => "en",
        }
    }

    pub fn texts(self) -> &'static Texts {
        match self {
            Lang::Nl => &NL,
            Lang::En => &EN,
        }
    }

    /// What links within the console append to keep the language: `""` or `"?lang=en"`.
    pub fn query(self) -> &'static str {
        match self {
            Lang::Nl => "",
            Lang::En => "?lang=en",
        }
    }
}

macro_rules! texts {
    ($($key:ident: $nl:expr, $en:expr;)*) => {
        /// Every text of the console, by key.
        pub struct Texts { $(pub $key: &'static str,)* }
        pub const NL: Texts = Texts { $($key: $nl,)* };
        pub const EN: Texts = Texts { $($key: $en,)* };
    };
}

texts! {
    other_lang: "English", "Nederlands";
    other_lang_code: "en", "nl";
    skip: "Naar de inhoud", "Skip to content";
    console: "console voor privacyfunctionarissen", "console for privacy officers";
    nav: "Hoofdmenu", "Main menu";
    nav_purposes: "Doelen en grants", "Purposes and grants";
    nav_matrix: "Wie ziet wat", "Who sees what";
    nav_decide: "Mag ik dit zien?", "May I see this?";
    nav_inzage: "Inzage (art. 15)", "Access report (art. 15)";
    nav_audit: "Auditlog", "Audit log";
    nav_history: "Beleidshistorie", "Policy history";
    nav_cases: "Zaken", "Cases";
    signed_in_as: "Aangemeld als", "Signed in as";
    policy_version: "Beleidsversie", "Policy version";
    instance: "Instantie", "Instance";
    not_an_officer: "Dit certificaat staat niet op de lijst van functionarissen die de console mogen openen.", "This certificate is not on the list of officers who may open the console.";
    bad_form: "Dit formulier is niet aangenomen: het moet vanaf een pagina van de console worden verstuurd.", "This form was not accepted: it must be sent from one of the console's pages.";
    not_found: "Deze pagina bestaat niet.", "This page does not exist.";
    method_not_allowed: "Deze pagina kan niet op deze manier worden opgevraagd.", "This page cannot be requested this way.";
    form_too_large: "Dit formulier is te groot.", "This form is too large.";
    control_characters: "Dit formulier bevat een stuurteken (zoals een tab of regeleinde); dat is nooit geldige invoer.", "This form holds a control character (such as a tab or line break); that is never valid input.";
    case_partners: "Betrokken partners (kommagescheiden)", "Partners involved (comma-separated)";
    no_matching_cases: "Geen zaken die aan het filter voldoen.", "No cases match the filter.";
    case_filter_bsn: "Een zaaknummer bevat nooit een BSN; het filter is niet toegepast.", "A case id never holds a BSN; the filter was not applied.";
    back_to_console: "Terug naar de console", "Back to the console";
        not_a_form: "Dit is geen formulier (verwacht: application/x-www-form-urlencoded).", "This is not a form (expected: application/x-www-form-urlencoded).";
    choose_from_list: "Kies de afnemer, het doel en de operatie uit de lijsten.", "Choose the consumer, the purpose and the operation from the lists.";
    bound_order: "De begindatum ligt na de einddatum.", "The start date is after the end date.";
    unknown_format: "Onbekende vorm; kies pagina, CSV of JSON.", "Unknown format; choose page, CSV or JSON.";
    chain_broken_letter: "Het auditlog is beschadigd: dit overzicht kan onvolledig of gewijzigd zijn. Maak het opnieuw als het log is hersteld (zie de auditlogpagina).", "The audit log is damaged: this overview may be incomplete or altered. Make it again once the log is repaired (see the audit log page).";
    chain_broken_download: "Het auditlog is beschadigd; een download zou dat niet vermelden. Gebruik de pagina, die de waarschuwing toont, of herstel eerst het log.", "The audit log is damaged; a download would not say so. Use the page, which shows the warning, or repair the log first.";
    no_policy: "Er is geen geldige beleidsset geladen; de gateway weigert elke uitwisseling.", "No valid policy set is loaded; the gateway refuses every exchange.";
    error: "Fout", "Error";
    none: "—", "—";
    home_title: "Overzicht", "Overview";
    home_intro: "Deze console toont wat de gateway afdwingt en vastlegt. Niets hier verandert beleid, zaken of het auditlog; alleen een inzageverzoek wordt zelf vastgelegd.", "This console shows what the gateway enforces and records. Nothing here changes policy, cases or the audit log; only an access report is itself recorded.";
    home_purposes: "De doelen met hun grondslag, en per grant de velden, voorwaarden en juridische onderbouwing.", "The purposes with their legal basis, and per grant the fields, conditions and legal reasoning.";
    home_matrix: "Welke afnemer welke velden ziet, voor welk doel. Te filteren.", "Which consumer sees which fields, for which purpose. Filterable.";
    home_decide: "Dezelfde beslissing als de gateway (policy explain) voor een verzoek dat u beschrijft.", "The gateway's own decision (policy explain) for a request you describe.";
    home_inzage: "Alle uitwisselingen over één persoon, als brief en als download.", "Every exchange about one person, as a letter and as a download.";
    home_audit: "Of de hashketen van het auditlog klopt, het laatste record en de schrijftijd.", "Whether the audit log's hash chain verifies, the last record and the write latency.";
    home_history: "De geladen beleidsversies, en wie er toegang bij krijgt of verliest.", "The policy versions loaded, and who gains or loses access.";
    home_cases: "Per zaak de afgesproken reikwijdte, bezwaren, doorbrekingen en time-outs.", "Per case the agreed scope, objections, overrides and time-outs.";
    purposes_title: "Doelen en grants", "Purposes and grants";
    legal_basis: "Grondslag", "Legal basis";
    processing_activity: "Verwerkingsactiviteit", "Processing activity";
    special_categories: "Bijzondere persoonsgegevens", "Special categories";
    retention: "Bewaartermijn", "Retention";
    incompatible_with: "Niet verenigbaar met", "Incompatible with";
    refused: "Nooit toegestaan", "Never served";
    note: "Toelichting", "Note";
    grants: "Grants", "Grants";
    consumer: "Afnemer", "Consumer";
    operation: "Operatie", "Operation";
    partner: "Partner", "Partner";
    purpose: "Doel", "Purpose";
    grant: "Grant", "Grant";
    fields_released: "Verstrekte velden", "Fields released";
    withheld: "Achtergehouden", "Withheld";
    transform: "Bewerking", "Transform";
    conditions: "Voorwaarden", "Conditions";
    validity: "Geldig", "Valid";
    rationale: "Juridische onderbouwing", "Legal reasoning";
    source: "Bron", "Source";
    schema: "Schema", "Schema";
    data_categories: "Gegevenscategorieën", "Data categories";
    no_grants: "Geen grants voor dit doel.", "No grants for this purpose.";
    schema_title: "Velden van schema", "Fields of schema";
    field: "Veld", "Field";
    category: "Categorie", "Category";
    unknown_schema: "Dit schema bestaat niet in de geladen beleidsset.", "This schema is not in the loaded policy set.";
    matrix_title: "Wie ziet wat", "Who sees what";
    matrix_intro: "Elke grant van elke afnemer, met de velden die hij verstrekt en achterhoudt (gelijk aan doelpoort policy matrix).", "Every grant of every consumer, with the fields it releases and withholds (as doelpoort policy matrix).";
    filter: "Filter", "Filter";
    all: "alle", "all";
    apply: "Toepassen", "Apply";
    rows_shown: "grants getoond", "grants shown";
    decide_title: "Mag ik dit zien?", "May I see this?";
    decide_intro: "Beschrijf een verzoek. De console neemt dezelfde beslissing als de gateway (doelpoort policy explain) en toont waarom, op grond van welke grant, en welke velden verstrekt of achtergehouden zouden worden. Er wordt niets opgevraagd en niets vastgelegd.", "Describe a request. The console takes the gateway's own decision (doelpoort policy explain) and shows why, under which grant, and which fields would be released or withheld. Nothing is fetched and nothing is recorded.";
    decide_register_note: "Of de zaak in het zaakregister open is, of er bezwaar is gemaakt en of de partner al betrokken is, toetst de gateway daarna; zie Zaken.", "Whether the case is open in the case register, whether an objection was made and whether the partner is already involved, the gateway checks afterwards; see Cases.";
    person_bsn: "BSN van de persoon", "Citizen service number (BSN) of the person";
    case_id: "Zaaknummer", "Case id";
    actor: "Medewerker (pseudoniem)", "Employee (pseudonymous id)";
    optional: "optioneel", "optional";
    ask: "Vraag het de gateway", "Ask the gateway";
    answer: "Antwoord", "Answer";
    allowed: "Ja, dit mag.", "Yes, this is allowed.";
    denied: "Nee, dit mag niet.", "No, this is not allowed.";
    reason: "Reden", "Reason";
    code: "Code", "Code";
    would_log: "Wat de gateway zou vastleggen", "What the gateway would record";
    response_fields: "Velden van het antwoord", "Fields of the answer";
    released: "verstrekt", "released";
    withheld_word: "achtergehouden", "withheld";
    cli_equivalent: "Dezelfde vraag op de opdrachtregel", "The same question on the command line";
    inzage_title: "Inzage (AVG art. 15)", "Access report (GDPR art. 15)";
    inzage_intro: "Voer het BSN in van de persoon die om inzage vraagt. Het BSN wordt niet opgeslagen of gelogd; het auditlog wordt doorzocht met een sleutel-HMAC. Elke inzage wordt zelf vastgelegd (doel art-15-verzoek, met u als medewerker).", "Enter the BSN of the person asking for access. The BSN is not stored or logged; the audit log is searched by a keyed HMAC. Every look-up is itself recorded (purpose art-15-verzoek, with you as the employee).";
    from: "Van (JJJJ-MM-DD)", "From (YYYY-MM-DD)";
    to: "Tot en met (JJJJ-MM-DD)", "To (YYYY-MM-DD)";
    format: "Vorm", "Format";
    format_page: "Pagina (af te drukken als brief)", "Page (printable as a letter)";
    show: "Opvragen", "Look up";
    bsn_invalid: "Dit is geen geldig BSN (9 cijfers die de elfproef doorstaan).", "This is not a valid BSN (9 digits passing the elfproef).";
    bound_invalid: "Een datum is niet geldig; gebruik JJJJ-MM-DD.", "A date is not valid; use YYYY-MM-DD.";
    audit_off: "Het auditlog staat uit: er is niets om over te rapporteren, en een inzage kan niet worden vastgelegd.", "The audit log is off: there is nothing to report, and a look-up cannot be recorded.";
    audit_failed: "De inzage kon niet worden vastgelegd in het auditlog, dus wordt het overzicht niet getoond. Probeer het later opnieuw.", "The look-up could not be recorded in the audit log, so the report is not shown. Try again later.";
    query_failed: "Het auditlog kon niet worden gelezen.", "The audit log could not be read.";
    letter_title: "Overzicht van uitwisselingen van uw gegevens", "Overview of exchanges of your data";
    letter_intro: "U heeft gevraagd welke gegevens over u zijn uitgewisseld via Doelpoort, de gateway van de gemeente. Hieronder staat elke uitwisseling: wanneer, welke organisatie, voor welk doel en op welke grondslag, met welke partner, en welke gegevens zijn verstrekt.", "You asked which data about you was exchanged through Doelpoort, the municipality's gateway. Below is every exchange: when, which organisation, for which purpose and on which legal basis, with which partner, and which data was released.";
    letter_date: "Datum", "Date";
    letter_period: "Periode", "Period";
    exchanged: "uitgewisseld", "exchanged";
    refused_word: "geweigerd", "refused";
    letter_whole_log: "het hele bewaarde auditlog", "the whole retained audit log";
    letter_count: "Aantal uitwisselingen", "Number of exchanges";
    time: "Tijd", "Time";
    organisation: "Organisatie", "Organisation";
    decision: "Beslissing", "Decision";
    case: "Zaak", "Case";
    no_rows: "Er zijn geen uitwisselingen over deze persoon vastgelegd.", "No exchanges about this person are recorded.";
    recorded_as: "Deze inzage is vastgelegd in het auditlog, met doel art-15-verzoek.", "This look-up is recorded in the audit log, with purpose art-15-verzoek.";
    warnings: "Let op", "Note";
    print_hint: "Druk deze pagina af met de afdrukfunctie van de browser; het menu wordt dan weggelaten.", "Print this page with the browser's print function; the menu is left out.";
    health_title: "Gezondheid van het auditlog", "Audit log health";
    chain: "Hashketen", "Hash chain";
    chain_ok: "klopt", "verifies";
    chain_broken: "gebroken", "broken";
    records: "Records", "Records";
    last_record: "Laatste record", "Last record";
    write_latency: "Schrijftijd (group commit, fsync)", "Write latency (group commit, fsync)";
    commits: "commits", "commits";
    mean: "gemiddeld", "mean";
    writable: "Schrijfbaar", "Writable";
    yes: "ja", "yes";
    no: "nee", "no";
    history_title: "Beleidshistorie", "Policy history";
    history_intro: "De beleidsversies die deze gateway sinds zijn start heeft geladen. Vergelijk twee versies om te zien wie toegang krijgt of verliest tot welke velden: de impactanalyse voor een DPIA.", "The policy versions this gateway has loaded since it started. Compare two versions to see who gains or loses access to which fields: the impact report a DPIA needs.";
    loaded_at: "Geladen", "Loaded";
    version: "Versie", "Version";
    current: "in gebruik", "running";
    compare: "Vergelijken", "Compare";
    from_version: "Van versie", "From version";
    to_version: "Naar versie", "To version";
    impact_title: "Gevolgen van de wijziging", "Impact of the change";
    gained: "Krijgt toegang tot", "Gains access to";
    lost: "Verliest toegang tot", "Loses access to";
    transformed: "Andere bewerking", "Other transform";
    terms: "Andere voorwaarden", "Other terms";
    no_changes: "Geen verschil in toegang tussen deze versies.", "No difference in access between these versions.";
    unknown_version: "Deze versie is niet (meer) bekend.", "This version is not (or no longer) known.";
    kind_granted: "nieuwe toegang", "new access";
    kind_revoked: "toegang ingetrokken", "access revoked";
    kind_changed: "gewijzigd", "changed";
    cases_title: "Zaakregister", "Case register";
    cases_intro: "De zaken die deze gateway kent, met de afgesproken doelen en partners, bezwaren, doorbrekingen en time-outs. Huishoudleden staan er alleen als aantal; het register bewaart geen BSN.", "The cases this gateway knows, with their agreed purposes and partners, objections, overrides and time-outs. Household members are shown as a count only; the register keeps no BSN.";
    owner: "Eigenaar", "Owner";
    purposes: "Doelen", "Purposes";
    partners: "Partners", "Partners";
    objections: "Bezwaren", "Objections";
    overrides: "Doorbrekingen", "Overrides";
    time_outs: "Time-outs", "Time-outs";
    household: "Huishoudleden", "Household members";
    created: "Aangemaakt", "Created";
    closed: "Gesloten", "Closed";
    purge_after: "Verwijderd na", "Purged after";
    approvers: "Goedgekeurd door", "Approved by";
    pending: "nog niet bevestigd", "not yet confirmed";
    no_cases: "Er staan geen zaken in het register.", "There are no cases in the register.";
    involved_since: "betrokken sinds", "involved since";
}
