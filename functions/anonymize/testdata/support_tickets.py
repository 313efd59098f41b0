#!/usr/bin/env python3
"""A third corpus for phone precision and recall: support-desk data, written
after the detector's phone rules and never used to change them — the
untouched sample that phone_context.py stopped being once it led to fixes.

Text documents are chat transcripts and e-mail replies: numbers given in
the middle of a turn, in signatures, after a name, in lists of two, in
parentheses with their kind; JSON records are CRM exports, where a number
often sits in a generic field (`"value"` beside `"type": "mobile"`, an
`"alt"` or `"callback"` field). Hard negatives: ticket, case and
transaction numbers, IMEI-like and serial numbers, epoch stamps, amounts in
cents, bank sort codes and account numbers, in prose and in fields.

Usage: support_tickets.py [--seed N] [--docs N] [--out FILE.jsonl]

Same output format as corpus.py (which it imports for the numbers: Faker's
per locale and libphonenumber's formats; and card numbers, so every
per-locale column has support). Run it through the corpus test:
`ANONYMIZE_CORPUS_SCRIPT=support_tickets.py ANONYMIZE_CORPUS_SEED=13 cargo
test -p anonymize --test corpus -- --nocapture` (the floors are not applied
to it; the test prints the tables and fails).
"""

import corpus

# A turn with a number in it: {x} is the phone number, {name} a name.
TURNS = {
    "en": ["Customer: hi, it's {name}, best number to get me is {x} after 5pm",
           "Agent: I have {x} on file for you, is that still right?",
           "Customer: you can try me on {x} or just email",
           "Customer: my husband's number is {x} if I don't pick up",
           "Thanks,\n{name}\n{x}", "{name} | Sales | {x}", "Numbers: {x} (work), {y} (home)",
           "Customer: pls call back {x}", "Agent: we tried {x} but got voicemail"],
    "de": ["Kunde: Sie erreichen mich unter {x} ab 17 Uhr", "Mit freundlichen Grüßen\n{name}\n{x}",
           "Kunde: meine neue Nummer ist {x}", "Bitte um Rückruf unter {x}, danke"],
    "fr": ["Client : vous pouvez me joindre au {x} en journée", "Cordialement,\n{name}\n{x}",
           "Client : mon nouveau numéro c'est le {x}", "Merci de rappeler le {x}"],
    "es": ["Cliente: me pueden llamar al {x} por la tarde", "Saludos,\n{name}\n{x}",
           "Cliente: mi número nuevo es {x}"],
    "it": ["Cliente: mi trovate al {x} dopo le 18", "Cordiali saluti,\n{name}\n{x}",
           "Cliente: il mio numero è {x}"],
    "pt": ["Cliente: podem ligar para {x} à tarde", "Atenciosamente,\n{name}\n{x}",
           "Cliente: meu número novo é {x}"],
    "nl": ["Klant: u kunt mij bellen op {x} na vijven", "Met vriendelijke groet,\n{name}\n{x}"],
    "pl": ["Klient: proszę dzwonić pod {x} po 17", "Pozdrawiam,\n{name}\n{x}"],
    "sv": ["Kund: ni når mig på {x} efter fem", "Vänliga hälsningar\n{name}\n{x}"],
    "da": ["Kunde: I kan fange mig på {x} efter kl. 17", "Venlig hilsen\n{name}\n{x}"],
    "no": ["Kunde: dere kan nå meg på {x} etter fem", "Med vennlig hilsen\n{name}\n{x}"],
    "fi": ["Asiakas: tavoitatte minut numerosta {x}", "Ystävällisin terveisin\n{name}\n{x}"],
}

# Not phones: {d8} … {d15} are that many digits.
NEGATIVES = [
    "Ticket #{d8} has been escalated.", "Case {d10} closed by agent.", "Transaction ID {d12}",
    "IMEI {d15} reported stolen.", "Serial no {d9}", "Refund of {d8} cents issued.",
    "Created at {d10} (epoch).", "Sort code 20-00-00, account {d8}.", "Your reference: {d11}",
    "Tracking number {d12}", "Device {d10} offline since Monday.", "Voucher code {d9}",
    "Kundennummer {d9}", "Numéro de dossier {d10}", "Número de pedido {d8}", "Ordrenummer {d9}",
]

PHONE_FIELDS = ["mobile", "home_phone", "callback", "alt", "emergency", "whatsapp", "fax"]
NEGATIVE_FIELDS = ["ticket_id", "case_no", "txn", "imei", "serial", "amount_cents", "created_ts",
                   "account_no", "voucher"]


class Gen(corpus.Gen):
    def digits(self, n):
        return str(self.rng.randrange(1, 10)) + "".join(str(self.rng.randrange(10)) for _ in range(n - 1))

    def negative(self):
        return self.rng.choice(NEGATIVES).format(**{f"d{n}": self.digits(n) for n in range(8, 16)})

    def turn(self, doc, loc, f):
        lang = corpus.LANG[loc]
        tpl = self.rng.choice(TURNS["en"] + TURNS.get(lang, []) * 2)
        tpl = tpl.replace("{name}", f.name())
        parts = tpl.split("{x}")
        doc.add(parts[0])
        doc.add(self.phone(loc, f), "phone")
        rest = parts[1]
        if "{y}" in rest:
            before, after = rest.split("{y}")
            doc.add(before)
            doc.add(self.phone(loc, f), "phone")
            rest = after
        doc.add(rest)

    def text_doc(self, loc):
        f = self.fakers[loc]
        doc = corpus.Doc()
        for k in range(self.rng.randrange(3, 8)):
            if k:
                doc.add("\n")
            r = self.rng.random()
            if r < 0.45:
                self.turn(doc, loc, f)
            elif r < 0.8:
                doc.add(self.negative())
            elif r < 0.9:
                doc.add("Paid with ")
                doc.add(self.card_print(self.card_digits()), "card")
            else:
                doc.add("Agent: " + f.sentence())
        return {"kind": "text", "locale": loc, "text": doc.text(), "spans": doc.spans}

    def json_doc(self, loc):
        f = self.fakers[loc]
        spans = []
        points = []
        for i in range(self.rng.randrange(1, 4)):
            value = self.phone(loc, f)
            kind = self.rng.choice(["mobile", "landline", "work"])
            spans.append({"path": f"$.customer.contact_points[{i}].value", "start": 0,
                          "end": len(value.encode()), "entity": "phone"})
            points.append({"type": kind, "value": value, "verified": self.rng.random() < 0.5})
        customer = {"full_name": f.name(), "contact_points": points}
        for key in self.rng.sample(PHONE_FIELDS, self.rng.randrange(0, 2)):
            value = self.phone(loc, f)
            spans.append({"path": f"$.customer.{key}", "start": 0, "end": len(value.encode()),
                          "entity": "phone"})
            customer[key] = value
        card = self.card_print(self.card_digits())
        spans.append({"path": "$.billing.card", "start": 0, "end": len(card.encode()), "entity": "card"})
        billing = {"card": card}
        for key in self.rng.sample(NEGATIVE_FIELDS, self.rng.randrange(2, 5)):
            billing[key] = self.digits(self.rng.choice([8, 9, 10, 11, 12, 15]))
        rec = {"customer": customer, "billing": billing, "last_note": self.negative()}
        return {"kind": "json", "locale": loc, "json": rec, "spans": spans}


if __name__ == "__main__":
    corpus.main(Gen, __doc__, seed=13)
