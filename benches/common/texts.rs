// Contact texts shared by `benches/classify.rs` and `examples/cost.rs` (included with
// `include!`): English and Spanish, one without a language tag, 144 bytes on average.

/// Written for this bench (not taken from any evaluation set).
const TEXTS: &[(&str, &str)] = &[
    (
        "en",
        "@airline my flight from Denver was cancelled last night and nobody told us. I've been on hold for 2 hours, this is ridiculous. Can someone please rebook me?",
    ),
    (
        "en",
        "Thanks to the crew on flight 2301 today, smooth boarding and a really friendly attendant. Great job, will fly with you again!",
    ),
    (
        "en",
        "Why was I charged twice for the same booking? The refund still hasn't arrived and the app keeps showing an error when I try to log in. NOT happy.",
    ),
    (
        "en",
        "Bag didn't make it to Boston again. Second time this month. The baggage claim desk had a 45 minute line and they hung up on me when I called.",
    ),
    (
        "es",
        "Llevo una hora en espera y nadie contesta. Me cancelaron el vuelo sin avisar y ahora no puedo cambiar la reserva desde la aplicación. Pésimo servicio.",
    ),
    (
        "es",
        "Hola, ¿cómo puedo cambiar la dirección de entrega de mi pedido? Gracias por la ayuda, el último envío llegó perfecto y muy rápido.",
    ),
    (
        "es",
        "Mi maleta llegó rota y con la ropa mojada. He puesto una reclamación hace dos semanas y todavía no tengo respuesta. Muy decepcionado con la compañía.",
    ),
    (
        "",
        "The gate agent was rude and the flight was delayed three hours with no explanation. No es la primera vez que pasa, estoy harto de esperar.",
    ),
];

/// The texts with their language tags.
pub fn short_texts() -> Vec<(&'static str, String)> {
    TEXTS.iter().map(|&(l, t)| (l, t.to_string())).collect()
}

/// The pipeline's events carry ~290-byte texts: the same texts joined in pairs.
pub fn long_texts() -> Vec<(&'static str, String)> {
    (0..TEXTS.len())
        .map(|i| {
            let ((lang, a), (_, b)) = (TEXTS[i], TEXTS[(i + 1) % TEXTS.len()]);
            (lang, format!("{a} {b}"))
        })
        .collect()
}

/// Classifies each text once (an empty tag means no language), as the bench and the
/// instruction counter both measure it.
pub fn classify_each(
    cls: &crisis_pulse::classify::Classifier,
    texts: &[(&str, String)],
    scratch: &mut crisis_pulse::classify::Scratch,
    out: &mut crisis_pulse::classify::Classification,
) {
    for (lang, text) in texts {
        let input = crisis_pulse::classify::ClassifyInput {
            text: Some(text),
            language: (!lang.is_empty()).then_some(*lang),
            ..Default::default()
        };
        cls.classify(std::hint::black_box(&input), scratch, out);
        std::hint::black_box(&*out);
    }
}
