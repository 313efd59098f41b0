#!/usr/bin/env python3
"""A second corpus for phone precision and recall, written apart from
corpus.py's templates: other sentences and field names around the numbers,
and hard negatives — bare 8–11 digit numbers that are not phones (order,
invoice, customer, organisation and account numbers, amounts), many of
which a numbering plan would take — in prose and in JSON fields.

Usage: phone_context.py [--seed N] [--docs N] [--out FILE.jsonl]

Same output format as corpus.py (which it imports for the numbers
themselves: Faker's per locale, drawn again when they are no number of the
locale's country, and libphonenumber's formats from
phones_libphonenumber.tsv; and for card numbers, so that every per-locale
column has support). Its sentences and keys were written once and are not
tuned to the detector: some announce a number with no phone word at all
("Kontakt meg på", `"msisdn"`), and the detector's recall shows it.

Run it through the corpus test: `ANONYMIZE_CORPUS_SCRIPT=phone_context.py
ANONYMIZE_CORPUS_SEED=11 cargo test -p anonymize --test corpus -- --nocapture`.
"""

import corpus

PHONE_TEXT = {
    "en": ["Contact: {x}", "You can phone me on {x}.", "cell: {x}", "Reach us at {x} any weekday.",
           "ph. {x}", "Our telephone number is {x}.", "{x} (mobile)", "Questions? {x}", "Text me at {x}"],
    "no": ["Kontakt meg på {x}.", "Tlf: {x}", "Mobilnummer {x}", "Du når oss på {x}.", "ring {x} for avtale",
           "Telefonnr.: {x}", "Vakttelefon {x}"],
    "da": ["Tlf. {x}", "Kontakt os på {x}.", "Mobilnr: {x}", "Ring på {x} i dag.", "Telefonnummer: {x}"],
    "sv": ["Tfn {x}", "Nå mig på {x}.", "Mobilnummer: {x}", "Ring {x}"],
    "de": ["Erreichbar unter {x}", "Tel.-Nr. {x}", "Mobilnummer: {x}", "Rückruf an {x}"],
    "fr": ["Joignable au {x}", "Numéro de téléphone : {x}", "Tél portable {x}"],
    "es": ["Contacto: {x}", "Tel. móvil {x}", "Número de teléfono {x}"],
    "it": ["Recapito: {x}", "Telefono {x}", "Cell. {x}"],
    "nl": ["Bereikbaar op {x}", "Tel.nr. {x}", "Mobiel nummer {x}"],
    "pt": ["Contato: {x}", "Fone {x}", "Telemóvel {x}", "WhatsApp {x}"],
    "pl": ["Kontakt: {x}", "Nr tel. {x}", "Komórka {x}"],
    "fi": ["Puh. {x}", "Soita {x}", "GSM {x}"],
    "cs": ["Tel.: {x}", "Mobil {x}", "Kontakt {x}"],
    "ja": ["TEL {x}", "連絡先: {x}", "電話 {x}"],
}

# Not phones: {n} is 8 digits, {n9} 9, {n10} 10, {n11} 11.
NEGATIVE_TEXT = [
    "Ordrenummer {n}", "Order {n} shipped.", "Beløp {n} kr", "Org.nr. {n9}", "Faktura {n}.",
    "Kundenr. {n}", "Total: {n}", "Ref {n}", "Kontonummer {n11}", "Sak {n} er lukket.",
    "Tracking {n10}", "Invoice no. {n}", "Batch {n} processed.", "{n} items in stock.", "Saldo {n}",
    "Ring oss gjerne. Saksnummer {n}.", "Call us any time. Order {n} is on its way.",
    "Bestellung {n} versandt.", "Commande {n} expédiée.", "Pedido {n} enviado.",
]

PHONE_KEYS = ["tlf", "telefon", "mobile", "phoneNumber", "contact_phone", "kontakt", "number", "msisdn",
              "tel_no", "mobil", "cellular", "phone_home"]
NEGATIVE_KEYS = ["order_id", "invoice", "amount_cents", "customer_no", "account", "ordrenummer", "sku",
                 "tracking", "kundenummer", "orgnr"]


class Gen(corpus.Gen):
    def digits(self, n):
        return str(self.rng.randrange(1, 10)) + "".join(str(self.rng.randrange(10)) for _ in range(n - 1))

    def negative(self):
        return self.rng.choice(NEGATIVE_TEXT).format(
            n=self.digits(8), n9=self.digits(9), n10=self.digits(10), n11=self.digits(11))

    def phone_sentence(self, doc, loc, f):
        lang = corpus.LANG[loc]
        tpl = self.rng.choice(PHONE_TEXT["en"] + PHONE_TEXT.get(lang, []) * 3)
        before, after = tpl.split("{x}")
        doc.add(before)
        doc.add(self.phone(loc, f), "phone")
        doc.add(after)

    def text_doc(self, loc):
        f = self.fakers[loc]
        doc = corpus.Doc()
        for k in range(self.rng.randrange(3, 8)):
            if k:
                doc.add(self.rng.choice([" ", "\n", ". "]))
            r = self.rng.random()
            if r < 0.4:
                self.phone_sentence(doc, loc, f)
            elif r < 0.75:
                doc.add(self.negative())
            elif r < 0.85:
                doc.add("Card " if self.rng.random() < 0.5 else "Kort: ")
                doc.add(self.card_print(self.card_digits()), "card")
            else:
                doc.add(f.sentence())
        return {"kind": "text", "locale": loc, "text": doc.text(), "spans": doc.spans}

    def json_doc(self, loc):
        f = self.fakers[loc]
        spans = []
        contact = {"name": f.name()}
        for key in self.rng.sample(PHONE_KEYS, self.rng.randrange(1, 3)):
            value = self.phone(loc, f)
            spans.append({"path": f"$.contact.{key}", "start": 0, "end": len(value.encode()), "entity": "phone"})
            contact[key] = value
        if self.rng.random() < 0.3:
            values = [self.phone(loc, f) for _ in range(2)]
            for i, value in enumerate(values):
                spans.append({"path": f"$.contact.numbers[{i}]", "start": 0, "end": len(value.encode()),
                              "entity": "phone"})
            contact["numbers"] = values
        card = self.card_print(self.card_digits())
        spans.append({"path": "$.payment.card", "start": 0, "end": len(card.encode()), "entity": "card"})
        payment = {"card": card}
        for key in self.rng.sample(NEGATIVE_KEYS, self.rng.randrange(2, 5)):
            payment[key] = self.digits(self.rng.choice([8, 8, 9, 10, 11]))
        rec = {"contact": contact, "payment": payment, "postcode": f.postcode(), "comment": self.negative()}
        return {"kind": "json", "locale": loc, "json": rec, "spans": spans}


if __name__ == "__main__":
    corpus.main(Gen, __doc__, seed=11)
