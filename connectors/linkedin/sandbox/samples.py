"""Fictional sample people in the source API's own JSON shape, for the sandbox and demo.

Every name, company and domain is invented (domains end in ``.example``, except one
gmail.com address kept on purpose for the blocked-domain privacy rule). The set covers
the cases mapping and privacy rules must survive: non-Latin and accented names, very long
fields, padded whitespace, no current position, nothing shared, several phone types.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import NotRequired, TypedDict

from connectors.linkedin.mapping import (
    ContactInfo,
    Me,
    Message,
    PhoneNumber,
    PhoneType,
    Position,
    Profile,
)


class SamplePerson(TypedDict):
    """One person as the sandbox holds them; ``contactInfo`` None means nothing shared."""

    profile: Profile
    contactInfo: NotRequired[ContactInfo | None]
    messages: NotRequired[list[Message]]


#: The signed-in member the sandbox answers ``/v1/me`` with.
ME: Me = {
    "id": "urn:li:member:1000",
    "publicId": "sandbox-member",
    "firstName": "Sandra",
    "lastName": "Boxwell",
}

LONG_HEADLINE = (
    "Chief Interoperability Evangelist and Senior Principal Solutions Architect for "
    "Cross-Border Supply-Chain Harmonisation, Sustainable Procurement Transformation, "
    "Multi-Cloud Data Governance and Customer-Obsessed Operational Excellence Programmes "
    "across the Nordics, the Baltics and Benelux"
)
LONG_COMPANY = (
    "Consolidated Amalgamated Intercontinental Holding Company for Widgets, Gadgets, "
    "Sprockets, Flanges, Gaskets and Assorted Precision-Engineered Fastening Solutions "
    "(Northern European Regional Subsidiary, Formerly Known as Widgets and Sprockets Ltd)"
)

_TEXTS = (
    "Thanks for connecting! Would a short call next week suit you?",
    "Happy to. Tuesday at 10:00 works for me.",
    "Great, I'll send an invite with the agenda.",
    "Could you share the pricing sheet before we meet?",
    "Sent it over — let me know if anything is unclear.",
)
_NEWEST = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)


def _pos(
    title: str,
    company: str,
    domain: str | None = None,
    *,
    current: bool = True,
    started: str | None = None,
) -> Position:
    return {
        "title": title,
        "companyName": company,
        "companyDomain": domain,
        "current": current,
        "startedOn": started,
    }


def _phones(*pairs: tuple[str, PhoneType]) -> list[PhoneNumber]:
    return [{"number": number, "type": kind} for number, kind in pairs]


# (publicId, first, last, headline, location, positions, contact info or None, messages)
_Row = tuple[str, str, str, str | None, str | None, list[Position], ContactInfo | None, int]

_ROWS: tuple[_Row, ...] = (
    ("ada-quill", "Ada", "Quill", "Head of Procurement at Northwind Looms", "Lyon, France",
     [_pos("Head of Procurement", "Northwind Looms", "northwind.example", started="2021-04-01")],
     {"emailAddress": "ada.quill@northwind.example",
      "phoneNumbers": _phones(("+33 4 72 00 00 01", "WORK"))}, 3),
    ("zoe-angstrom", "Zoë", "Ångström", "Systemingenjör på Fjordverk", "Malmö, Sverige",
     [_pos("Systemingenjör", "Fjordverk AB", "fjordverk.example")],
     {"emailAddress": "zoe.angstrom@fjordverk.example",
      "phoneNumbers": _phones(("+46 40 000 00 02", "MOBILE"))}, 2),
    ("jose-nunez", "José", "Núñez", "Director Comercial en Olivar Digital", "Sevilla, España",
     [_pos("Director Comercial", "Olivar Digital S.L.", "olivar-digital.example")],
     {"emailAddress": "jose.nunez@olivar-digital.example",
      "phoneNumbers": _phones(("+34 600 000 003", "MOBILE"), ("+34 954 000 003", "WORK"))}, 4),
    ("wang-xiaoming", "小明", "王", "云帆科技 采购经理", "上海",
     [_pos("采购经理", "上海云帆科技有限公司", "yunfan-tech.example")], {}, 0),
    ("nils-hagberg", "Nils", "Hagberg", "Freelance photographer", "Oslo, Norge",
     [_pos("Photographer", "Nils Hagberg Foto")],
     {"emailAddress": "nils.hagberg.fictional@gmail.com",
      "phoneNumbers": _phones(("+47 400 00 005", "HOME"))}, 1),
    ("mette-larsen", "Mette", "Larsen", LONG_HEADLINE, "Aarhus, Danmark",
     [_pos("Senior Principal Solutions Architect", LONG_COMPANY, "widgets-sprockets.example")],
     {"emailAddress": "mette.larsen@widgets-sprockets.example"}, 0),
    ("priya-raman", "Priya", "Raman", "Open to new opportunities", "Bengaluru, India",
     [_pos("Category Manager", "Tamarind Retail", "tamarind.example", current=False)],
     {"emailAddress": "priya.raman@mailbox.example"}, 2),
    ("quentin-marchal", "Quentin", "Marchal", "Acheteur industriel", "Lille, France",
     [_pos("Acheteur", "Forges du Nord", "forges-du-nord.example")], None, 0),
    ("elodie-blanc", "  Élodie ", " Blanc  ", "  CTO at Lumen Labs  ", " Genève ",
     [_pos("  CTO ", " Lumen Labs ", " lumen-labs.example ")],
     {"emailAddress": "  elodie@lumen-labs.example ", "phoneNumbers": _phones(("   ", "WORK"))},
     1),
    ("lukasz-zolkiewski", "Łukasz", "Żółkiewski", "Kierownik zakupów", "Kraków, Polska",
     [_pos("Kierownik zakupów", "Wisła Logistyka", "wisla-logistyka.example"),
      _pos("Analityk", "Wisła Logistyka", "wisla-logistyka.example", current=False)],
     {"emailAddress": None, "phoneNumbers": _phones(("+48 12 000 00 10", "OTHER"))}, 0),
    ("aoife-ni-bhriain", "Aoife", "Ní Bhriain", "Operations Lead", "Galway, Éire",
     [_pos("Volunteer", "Galway Rowing Club", None, current=False),
      _pos("Operations Lead", "Atlantic Kelp Co", "atlantic-kelp.example")],
     {"phoneNumbers": [{"number": "+353 91 000 011"}]}, 0),
    ("kenji-sato", "健二", "佐藤", "営業部長 at Sakura Robotics", "東京",
     [_pos("営業部長", "Sakura Robotics", "sakura-robotics.example")],
     {"emailAddress": "kenji.sato@sakura-robotics.example"}, 2),
    ("fatima-zahra", "Fatima", "Zahra", "Supply Chain Director", "Casablanca, Maroc",
     [_pos("Supply Chain Director", "Atlas Components", "atlas-components.example"),
      _pos("Advisor", "Argan Ventures", "argan.example")],
     {"emailAddress": "f.zahra@atlas-components.example",
      "phoneNumbers": _phones(("+212 5 22 00 00 13", "HOME"), ("+212 6 00 00 00 13", "MOBILE"))},
     0),
    ("soren-kjaer", "Søren", "Kjær", None, None,
     [_pos("Indkøber", "Havbrise ApS", None)], {}, 0),
    ("olga-petrova", "Ольга", "Петрова", "Руководитель отдела закупок", "Riga, Latvija",
     [_pos("Руководитель отдела закупок", "Balt Amber Trade", "balt-amber.example")],
     {"emailAddress": "olga.petrova@balt-amber.example"}, 1),
    ("tomas-novak", "Tomáš", "Novák", "Product Owner", "Brno, Česko",
     [_pos("Product Owner", "Moravia Mills", "moravia-mills.example")],
     {"emailAddress": "tomas.novak@moravia-mills.example",
      "phoneNumbers": _phones(("+420 500 000 016", "WORK"), ("+420 600 000 016", "WORK"))}, 0),
    ("grace-okafor", "Grace", "Okafor", "Partnerships at Baobab Energy", "Lagos, Nigeria",
     [_pos("Partnerships Manager", "Baobab Energy", "baobab-energy.example")],
     {"emailAddress": "grace.okafor@baobab-energy.example"}, 3),
    ("minh-anh-tran", "Minh Anh", "Trần", "Kỹ sư mua hàng", "Hà Nội, Việt Nam",
     [_pos("Kỹ sư mua hàng", "Sông Hồng Điện tử", "songhong.example")], None, 0),
    ("lars-eriksen", "Lars", "Eriksen", "Retired", "Bergen, Norge", [], {}, 0),
    ("isabel-costa", "Isabel", "Costa", "Diretora de Compras", "Porto, Portugal",
     [_pos("Diretora de Compras", "Vinhas do Douro", "vinhas-douro.example")],
     {"emailAddress": "isabel.costa@vinhas-douro.example",
      "phoneNumbers": _phones(("+351 22 000 0020", "WORK"))}, 0),
    ("hamid-karimi", "Hamid", "Karimi", "Buyer", "Hamburg, Deutschland",
     [_pos("Buyer", "Elbe Maschinenbau GmbH", "elbe-maschinenbau.example")],
     {"emailAddress": "hamid.karimi@elbe-maschinenbau.example"}, 0),
    ("ana-lucia-mendes", "Ana Lúcia", "Mendes", "Gerente de TI", "São Paulo, Brasil",
     [_pos("Gerente de TI", "Ipê Sistemas", "ipe-sistemas.example")],
     {"emailAddress": "ana.mendes@ipe-sistemas.example"}, 1),
    ("ji-woo-park", "지우", "박", "구매 담당", "서울",
     [_pos("구매 담당", "Hanbit Precision", "hanbit.example")],
     {"phoneNumbers": _phones(("+82 2 0000 0023", "MOBILE"))}, 0),
    ("oliver-brandt", "Oliver", "Brandt", "Einkaufsleiter", "Wien, Österreich",
     [_pos("Einkaufsleiter", "Donau Papier AG", "donau-papier.example")],
     {"emailAddress": "oliver.brandt@donau-papier.example", "websites": ["https://donau-papier.example"]},
     2),
)  # fmt: skip


def messages_for(index: int, count: int) -> list[Message]:
    """``count`` fictional messages of one conversation, newest first."""
    return [
        {
            "id": f"urn:li:message:{7000 + index}-{k}",
            "conversationId": f"urn:li:conversation:{7000 + index}",
            "sender": "them" if k % 2 == 0 else "me",
            "sentAt": (_NEWEST - timedelta(hours=5 * k + index)).isoformat().replace("+00:00", "Z"),
            "text": _TEXTS[k % len(_TEXTS)],
        }
        for k in range(count)
    ]


def profile(index: int, public_id: str, first: str, last: str) -> Profile:
    """A minimal profile with a fictional member id derived from ``index``."""
    return {
        "id": f"urn:li:member:{2000 + index}",
        "publicId": public_id,
        "firstName": first,
        "lastName": last,
        "headline": None,
        "location": None,
        "industry": None,
        "profileUrl": f"https://www.linkedin.example/in/{public_id}",
        "positions": [],
    }


def sample_people() -> list[SamplePerson]:
    """A fresh, deep copy of every sample person; callers may change it freely."""
    people: list[SamplePerson] = []
    for index, row in enumerate(_ROWS, start=1):
        public_id, first, last, headline, location, positions, contact, count = row
        person = profile(index, public_id, first, last)
        person["headline"] = headline
        person["location"] = location
        person["positions"] = positions
        people.append(
            {"profile": person, "contactInfo": contact, "messages": messages_for(index, count)}
        )
    return copy.deepcopy(people)


def generated_people(count: int, *, first_index: int = 1000) -> list[SamplePerson]:
    """``count`` plain fictional people (email, company, title) for bulk runs and fault
    tests; publicIds ``person-<n>``, member ids ``urn:li:member:<2000 + n>``."""
    people: list[SamplePerson] = []
    for n in range(first_index, first_index + count):
        person = profile(n, f"person-{n}", f"First{n}", f"Last{n}")
        person["headline"] = "Buyer"
        company = f"Company {n % 97}"
        person["positions"] = [_pos("Buyer", company, f"company-{n % 97}.example")]
        contact: ContactInfo = {"emailAddress": f"person.{n}@company-{n % 97}.example"}
        people.append({"profile": person, "contactInfo": contact, "messages": []})
    return people


__all__ = [
    "LONG_COMPANY",
    "LONG_HEADLINE",
    "ME",
    "SamplePerson",
    "generated_people",
    "messages_for",
    "profile",
    "sample_people",
]
