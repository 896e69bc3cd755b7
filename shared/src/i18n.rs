//! Interface strings in English, French and Spanish, shared by the app and the node's
//! server-rendered pages. Keys are the English text.

pub use crate::model::taxonomy::Lang;

/// (English, French, Spanish)
const TABLE: &[(&str, &str, &str)] = &[
    (
        "Good practices for migrant integration",
        "Bonnes pratiques d'intégration des migrants",
        "Buenas prácticas de integración de migrantes",
    ),
    ("Practices", "Pratiques", "Prácticas"),
    ("Events", "Événements", "Eventos"),
    ("Organizations", "Organisations", "Organizaciones"),
    ("Map", "Carte", "Mapa"),
    (
        "Practices on a map",
        "Les pratiques sur une carte",
        "Las prácticas en un mapa",
    ),
    ("Places", "Lieux", "Lugares"),
    ("Coordinates", "Coordonnées", "Coordenadas"),
    ("Latitude", "Latitude", "Latitud"),
    ("Longitude", "Longitude", "Longitud"),
    (
        "latitude and longitude go together",
        "la latitude et la longitude vont ensemble",
        "la latitud y la longitud van juntas",
    ),
    ("without coordinates", "sans coordonnées", "sin coordenadas"),
    ("From the city", "D'après la ville", "Según la ciudad"),
    (
        "The map is drawn by the node: it shows again when the node can be reached.",
        "La carte est dessinée par le nœud : elle revient quand le nœud est joignable.",
        "El mapa lo dibuja el nodo: vuelve cuando se puede llegar al nodo.",
    ),
    (
        "the node does not know where this city is",
        "le nœud ne sait pas où se trouve cette ville",
        "el nodo no sabe dónde está esta ciudad",
    ),
    ("Show as a list", "Voir en liste", "Ver como lista"),
    ("Show on a map", "Voir sur une carte", "Ver en un mapa"),
    (
        "Add a practice",
        "Ajouter une pratique",
        "Añadir una práctica",
    ),
    ("Title", "Titre", "Título"),
    ("City", "Ville", "Ciudad"),
    ("Country", "Pays", "País"),
    ("Summary", "Résumé", "Resumen"),
    ("Theme", "Thème", "Tema"),
    ("Themes", "Thèmes", "Temas"),
    ("Publish now", "Publier maintenant", "Publicar ahora"),
    ("Save", "Enregistrer", "Guardar"),
    ("Cancel", "Annuler", "Cancelar"),
    ("Choose…", "Choisir…", "Elegir…"),
    ("Online", "En ligne", "En línea"),
    ("Connecting…", "Connexion…", "Conectando…"),
    ("Offline", "Hors ligne", "Sin conexión"),
    (
        "changes waiting",
        "modifications en attente",
        "cambios en espera",
    ),
    (
        "all changes saved",
        "toutes les modifications sont enregistrées",
        "todos los cambios guardados",
    ),
    ("Syncing", "Synchronisation", "Sincronizando"),
    (
        "Search practices",
        "Rechercher des pratiques",
        "Buscar prácticas",
    ),
    (
        "No practices match.",
        "Aucune pratique ne correspond.",
        "Ninguna práctica coincide.",
    ),
    ("practices", "pratiques", "prácticas"),
    ("Clear filters", "Effacer les filtres", "Borrar filtros"),
    ("Export CSV", "Exporter en CSV", "Exportar CSV"),
    ("Show more", "Afficher plus", "Mostrar más"),
    ("Export JSON", "Exporter en JSON", "Exportar JSON"),
    ("Target group", "Public cible", "Grupo destinatario"),
    ("Target groups", "Publics cibles", "Grupos destinatarios"),
    ("GCM objective", "Objectif du PMM", "Objetivo del PMM"),
    ("GCM objectives", "Objectifs du PMM", "Objetivos del PMM"),
    (
        "SDG goals",
        "Objectifs de développement durable",
        "Objetivos de Desarrollo Sostenible",
    ),
    ("Evidence", "Preuves", "Evidencia"),
    ("Review state", "État de relecture", "Estado de revisión"),
    ("draft", "brouillon", "borrador"),
    ("submitted", "soumise", "enviada"),
    ("published", "publiée", "publicada"),
    ("archived", "archivée", "archivada"),
    ("Context", "Contexte", "Contexto"),
    (
        "Process and activities",
        "Démarche et activités",
        "Proceso y actividades",
    ),
    ("Outcomes", "Résultats", "Resultados"),
    ("Transferability", "Transférabilité", "Transferibilidad"),
    ("Funding", "Financement", "Financiación"),
    (
        "Lead organization",
        "Organisation responsable",
        "Organización responsable",
    ),
    ("Partners", "Partenaires", "Socios"),
    ("Actor level", "Niveau d'acteur", "Nivel del actor"),
    ("Start date", "Date de début", "Fecha de inicio"),
    ("End date", "Date de fin", "Fecha de fin"),
    ("Evidence level", "Niveau de preuve", "Nivel de evidencia"),
    ("Contact", "Contact", "Contacto"),
    ("Resources", "Ressources", "Recursos"),
    ("Language", "Langue", "Idioma"),
    ("History", "Historique", "Historial"),
    ("Also here now", "Aussi présents", "También aquí ahora"),
    ("Edit", "Modifier", "Editar"),
    ("Done", "Terminé", "Listo"),
    (
        "Submit for review",
        "Soumettre à relecture",
        "Enviar a revisión",
    ),
    ("Publish", "Publier", "Publicar"),
    ("Send back", "Renvoyer", "Devolver"),
    ("Archive", "Archiver", "Archivar"),
    ("Restore", "Restaurer", "Restaurar"),
    ("Comment", "Commentaire", "Comentario"),
    (
        "Review comments",
        "Commentaires de relecture",
        "Comentarios de revisión",
    ),
    ("Related events", "Événements liés", "Eventos relacionados"),
    ("Replicated by", "Reproduite par", "Replicada por"),
    ("Loading…", "Chargement…", "Cargando…"),
    ("Not found", "Introuvable", "No encontrado"),
    ("Back to the list", "Retour à la liste", "Volver a la lista"),
    ("Log in", "Se connecter", "Iniciar sesión"),
    ("Log out", "Se déconnecter", "Cerrar sesión"),
    ("Name", "Nom", "Nombre"),
    ("Password", "Mot de passe", "Contraseña"),
    ("Visitor", "Visiteur", "Visitante"),
    ("Kind", "Type", "Tipo"),
    ("Website", "Site web", "Sitio web"),
    ("Date", "Date", "Fecha"),
    ("Place", "Lieu", "Lugar"),
    ("Online link", "Lien en ligne", "Enlace en línea"),
    ("Recording", "Enregistrement", "Grabación"),
    ("Organizers", "Organisateurs", "Organizadores"),
    ("Add an event", "Ajouter un événement", "Añadir un evento"),
    ("Description", "Description", "Descripción"),
    (
        "No events yet.",
        "Aucun événement pour l'instant.",
        "Todavía no hay eventos.",
    ),
    (
        "Connect to your node once to load the catalogue.",
        "Connectez-vous une fois à votre nœud pour charger le catalogue.",
        "Conéctese una vez a su nodo para cargar el catálogo.",
    ),
    ("Skip to content", "Aller au contenu", "Ir al contenido"),
    (
        "Share contact publicly",
        "Contact public",
        "Contacto público",
    ),
    ("Email", "Courriel", "Correo electrónico"),
    ("Phone", "Téléphone", "Teléfono"),
    ("Role", "Fonction", "Cargo"),
    ("Practice", "Pratique", "Práctica"),
    ("by", "par", "por"),
    ("Review", "Relecture", "Revisión"),
    (
        "This practice was withdrawn by its organization.",
        "Cette pratique a été retirée par son organisation.",
        "Esta práctica fue retirada por su organización.",
    ),
    (
        "This practice is published: see its public page.",
        "Cette pratique est publiée : voir sa page publique.",
        "Esta práctica está publicada: vea su página pública.",
    ),
    (
        "Unchecking this withdraws the published practice, whose history holds the contact, and republishes it without the contact at a new address.",
        "Décocher cette case retire la pratique publiée, dont l'historique contient le contact, et la republie sans le contact à une nouvelle adresse.",
        "Desmarcar esta casilla retira la práctica publicada, cuyo historial contiene el contacto, y la vuelve a publicar sin el contacto en una nueva dirección.",
    ),
    ("Erase", "Effacer", "Borrar"),
    (
        "Erasing withdraws this published practice from every ibis node and app that holds it, and returns it to draft here. Copies on servers outside the network cannot be recalled.",
        "Effacer retire cette pratique publiée de chaque nœud et application ibis qui la détient, et la remet en brouillon ici. Les copies sur des serveurs hors du réseau ne peuvent pas être rappelées.",
        "Borrar retira esta práctica publicada de cada nodo y aplicación ibis que la tenga, y la devuelve a borrador aquí. Las copias en servidores fuera de la red no se pueden recuperar.",
    ),
    ("Erase for good", "Effacer définitivement", "Borrar definitivamente"),
];

/// The interface string for `english` in `lang` (English if there is no entry).
pub fn tr(lang: Lang, english: &'static str) -> &'static str {
    match lang {
        Lang::En => english,
        Lang::Fr | Lang::Es => TABLE
            .iter()
            .find(|(en, _, _)| *en == english)
            .map(|(_, fr, es)| if lang == Lang::Fr { *fr } else { *es })
            .unwrap_or(english),
    }
}

/// The language a browser prefers among ours, from an `Accept-Language` header (RFC 9110
/// §12.5.4: weighted ranges, `*` and region subtags such as `fr-CA`); `None` if it names
/// none of them.
pub fn from_accept_language(header: &str) -> Option<Lang> {
    let mut best: Option<(Lang, u16)> = None;
    for range in header.split(',').take(32) {
        let mut parts = range.split(';');
        let tag = parts.next().unwrap_or("").trim();
        let weight = parts
            .find_map(|p| p.trim().strip_prefix("q="))
            .map_or(Some(1000), parse_weight);
        let Some(weight) = weight.filter(|w| *w > 0) else {
            continue;
        };
        let primary = tag.split('-').next().unwrap_or("").to_ascii_lowercase();
        let Some(lang) = Lang::from_code(&primary) else {
            continue;
        };
        if best.is_none_or(|(_, w)| weight > w) {
            best = Some((lang, weight));
        }
    }
    best.map(|(lang, _)| lang)
}

/// A quality value (`0`, `0.5`, `1.000`) in thousandths.
fn parse_weight(text: &str) -> Option<u16> {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u16 = match whole {
        "0" => 0,
        "1" => 1,
        _ => return None,
    };
    let fraction: u16 = format!("{fraction:0<3}").parse().ok()?;
    let weight = whole * 1000 + fraction;
    (weight <= 1000).then_some(weight)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_string_is_translated_once() {
        let mut seen = std::collections::HashSet::new();
        for (en, fr, es) in TABLE {
            assert!(seen.insert(*en), "`{en}` appears twice");
            assert!(
                !fr.is_empty() && !es.is_empty(),
                "`{en}` lacks a translation"
            );
        }
        assert_eq!(tr(Lang::Fr, "Practices"), "Pratiques");
        assert_eq!(tr(Lang::Es, "Offline"), "Sin conexión");
        assert_eq!(tr(Lang::Fr, "untranslated text"), "untranslated text");
    }

    #[test]
    fn the_preferred_language_is_read_from_accept_language() {
        assert_eq!(
            from_accept_language("fr-CA,fr;q=0.9,en;q=0.8"),
            Some(Lang::Fr)
        );
        assert_eq!(
            from_accept_language("de-DE, es;q=0.5, en;q=0.4"),
            Some(Lang::Es)
        );
        assert_eq!(from_accept_language("en;q=0.1, es;q=0.9"), Some(Lang::Es));
        assert_eq!(from_accept_language("fr;q=0, en"), Some(Lang::En));
        assert_eq!(from_accept_language("de, *;q=0.1"), None);
        assert_eq!(from_accept_language("es;q=2, fr;q=abc"), None);
        assert_eq!(from_accept_language(""), None);
    }
}
