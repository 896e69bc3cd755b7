//! The fixed vocabularies of the catalogue, defined once, labelled in English, French and
//! Spanish. Documents store the stable keys; labels are for display only.

/// A term of a vocabulary: a stable key and its labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Term {
    pub key: &'static str,
    pub en: &'static str,
    pub fr: &'static str,
    pub es: &'static str,
}

impl Term {
    pub fn label(&self, lang: Lang) -> &'static str {
        match lang {
            Lang::En => self.en,
            Lang::Fr => self.fr,
            Lang::Es => self.es,
        }
    }
}

/// The interface languages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Lang {
    #[default]
    En,
    Fr,
    Es,
}

impl Lang {
    pub const ALL: [Lang; 3] = [Lang::En, Lang::Fr, Lang::Es];

    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Fr => "fr",
            Lang::Es => "es",
        }
    }

    pub fn from_code(code: &str) -> Option<Lang> {
        match code.get(..2)?.to_ascii_lowercase().as_str() {
            "en" => Some(Lang::En),
            "fr" => Some(Lang::Fr),
            "es" => Some(Lang::Es),
            _ => None,
        }
    }

    /// The language's name in itself.
    pub fn name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Fr => "Français",
            Lang::Es => "Español",
        }
    }
}

macro_rules! terms {
    ($($key:literal => $en:literal, $fr:literal, $es:literal;)*) => {
        &[$(Term { key: $key, en: $en, fr: $fr, es: $es }),*]
    };
}

/// The ibis themes.
pub const THEMES: &[Term] = terms! {
    "employment" => "Employment", "Emploi", "Empleo";
    "education-language" => "Education and language", "Éducation et langue", "Educación e idioma";
    "housing" => "Housing", "Logement", "Vivienda";
    "health" => "Health", "Santé", "Salud";
    "civic-participation" => "Civic participation", "Participation civique", "Participación cívica";
    "social-cohesion" => "Social cohesion and anti-discrimination", "Cohésion sociale et lutte contre les discriminations", "Cohesión social y lucha contra la discriminación";
    "reception-services" => "Reception and access to services", "Accueil et accès aux services", "Acogida y acceso a servicios";
    "legal-status" => "Legal status and naturalization", "Statut juridique et naturalisation", "Estatus legal y naturalización";
    "youth" => "Youth", "Jeunesse", "Juventud";
    "women" => "Women", "Femmes", "Mujeres";
    "data-planning" => "Data and planning", "Données et planification", "Datos y planificación";
};

/// Who a practice is for.
pub const TARGET_GROUPS: &[Term] = terms! {
    "migrants" => "Migrants (all)", "Personnes migrantes (toutes)", "Personas migrantes (todas)";
    "refugees" => "Refugees and asylum seekers", "Réfugiés et demandeurs d'asile", "Personas refugiadas y solicitantes de asilo";
    "migrant-workers" => "Migrant workers", "Travailleurs migrants", "Trabajadores migrantes";
    "undocumented" => "Undocumented migrants", "Migrants sans papiers", "Migrantes indocumentados";
    "youth" => "Young people", "Jeunes", "Jóvenes";
    "children" => "Children", "Enfants", "Niñas y niños";
    "women" => "Women and girls", "Femmes et filles", "Mujeres y niñas";
    "older-people" => "Older people", "Personnes âgées", "Personas mayores";
    "families" => "Families", "Familles", "Familias";
    "newcomers" => "Recent arrivals", "Nouveaux arrivants", "Recién llegados";
    "host-community" => "Host community", "Société d'accueil", "Comunidad de acogida";
    "local-officials" => "Local officials and staff", "Élus et agents locaux", "Funcionarios y personal local";
};

/// Which level of government or society leads a practice.
pub const ACTOR_LEVELS: &[Term] = terms! {
    "city" => "City", "Ville", "Ciudad";
    "region" => "Region", "Région", "Región";
    "national" => "National", "National", "Nacional";
    "civil-society" => "Civil society", "Société civile", "Sociedad civil";
    "international" => "International", "International", "Internacional";
};

/// How well the outcomes of a practice are known.
pub const EVIDENCE_LEVELS: &[Term] = terms! {
    "anecdotal" => "Anecdotal", "Anecdotique", "Anecdótica";
    "monitored" => "Monitored", "Suivie", "Monitoreada";
    "evaluated" => "Evaluated", "Évaluée", "Evaluada";
    "independently-evaluated" => "Independently evaluated", "Évaluée de façon indépendante", "Evaluada de forma independiente";
};

/// Kinds of city-to-city events.
pub const EVENT_KINDS: &[Term] = terms! {
    "webinar" => "Webinar", "Webinaire", "Seminario web";
    "roundtable" => "Roundtable", "Table ronde", "Mesa redonda";
    "exchange" => "City-to-city exchange", "Échange entre villes", "Intercambio entre ciudades";
    "study-visit" => "Study visit", "Visite d'étude", "Visita de estudio";
    "conference" => "Conference", "Conférence", "Conferencia";
};

/// Kinds of member organizations.
pub const ORGANIZATION_KINDS: &[Term] = terms! {
    "city" => "City hall", "Mairie", "Ayuntamiento";
    "league-of-cities" => "League of cities", "Réseau de villes", "Red de ciudades";
    "un-agency" => "UN agency", "Agence des Nations unies", "Agencia de la ONU";
    "ngo" => "NGO", "ONG", "ONG";
    "government" => "Government", "Gouvernement", "Gobierno";
    "research" => "Research institution", "Institution de recherche", "Institución de investigación";
};

/// The 23 objectives of the Global Compact for Safe, Orderly and Regular Migration (short
/// titles).
pub const GCM_OBJECTIVES: [&str; 23] = [
    "Collect and use accurate and disaggregated data",
    "Minimize adverse drivers of migration",
    "Provide accurate and timely information",
    "Ensure proof of legal identity and documentation",
    "Enhance regular migration pathways",
    "Fair and ethical recruitment, decent work",
    "Address and reduce vulnerabilities in migration",
    "Save lives, coordinate on missing migrants",
    "Counter smuggling of migrants",
    "Prevent and eradicate trafficking in persons",
    "Manage borders in an integrated, secure way",
    "Certainty and predictability in migration procedures",
    "Use detention only as a last resort",
    "Consular protection and assistance",
    "Provide access to basic services",
    "Empower migrants and societies for full inclusion and social cohesion",
    "Eliminate discrimination, promote evidence-based public discourse",
    "Skills development and recognition of qualifications",
    "Conditions for migrants and diasporas to contribute to development",
    "Faster, safer and cheaper remittances",
    "Safe and dignified return, readmission and reintegration",
    "Portability of social security entitlements",
    "International cooperation and global partnerships",
];

/// The 17 Sustainable Development Goals (short titles).
pub const SDG_GOALS: [&str; 17] = [
    "No poverty",
    "Zero hunger",
    "Good health and well-being",
    "Quality education",
    "Gender equality",
    "Clean water and sanitation",
    "Affordable and clean energy",
    "Decent work and economic growth",
    "Industry, innovation and infrastructure",
    "Reduced inequalities",
    "Sustainable cities and communities",
    "Responsible consumption and production",
    "Climate action",
    "Life below water",
    "Life on land",
    "Peace, justice and strong institutions",
    "Partnerships for the goals",
];

/// The term with this key, if the vocabulary has it.
pub fn find(vocabulary: &'static [Term], key: &str) -> Option<&'static Term> {
    vocabulary.iter().find(|t| t.key == key)
}
