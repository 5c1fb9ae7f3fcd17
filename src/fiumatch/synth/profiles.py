"""Jurisdiction profiles for the synthetic data generator.

Owns how each jurisdiction writes things: its Faker locale and script, its date format,
whether it writes family names first, whether it has IBANs, and which Latin spelling its
passports use. Hand-written, small, and only for synthetic data: nothing here is used to
normalise real records.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ARABIC_FAMILY", "ARABIC_GIVEN", "PROFILES", "SECTORS", "Profile"]


@dataclass(frozen=True, slots=True)
class Profile:
    code: str  # ISO 3166-1 alpha-2
    alpha3: str
    locale: str  # Faker locale ("" for the hand-written Arabic lists)
    script: str  # latin, cyrillic, greek, han, japanese, hangul, arabic
    date_format: str  # strftime pattern for dates of birth
    family_first: bool  # the full name is written family name first
    iban: bool  # accounts are IBANs (else BIC + domestic account number)
    legal_forms: tuple[str, ...]  # legal forms in the local language
    latin_forms: tuple[str, ...]  # how foreigners write those legal forms
    email_domain: str


PROFILES: dict[str, Profile] = {p.code: p for p in (
    Profile("DE", "DEU", "de_DE", "latin", "%d.%m.%Y", False, True,
            ("GmbH", "AG", "KG", "GmbH & Co. KG"), ("GmbH", "AG", "KG", ""), "beispiel.de"),
    Profile("FR", "FRA", "fr_FR", "latin", "%d/%m/%Y", False, True,
            ("SA", "SARL", "SAS"), ("SA", "SARL", "SAS", ""), "exemple.fr"),
    Profile("ES", "ESP", "es_ES", "latin", "%d/%m/%Y", False, True,
            ("S.A.", "S.L."), ("SA", "SL", ""), "ejemplo.es"),
    Profile("PL", "POL", "pl_PL", "latin", "%d.%m.%Y", False, True,
            ("Sp. z o.o.", "S.A."), ("Sp. z o.o.", "LLC", ""), "przyklad.pl"),
    Profile("TR", "TUR", "tr_TR", "latin", "%d.%m.%Y", False, True,
            ("A.Ş.", "Ltd. Şti."), ("AS", "Ltd", ""), "ornek.com.tr"),
    Profile("GB", "GBR", "en_GB", "latin", "%d/%m/%Y", False, True,
            ("Ltd", "PLC", "LLP"), ("Ltd", "PLC", "Limited", ""), "example.co.uk"),
    Profile("RU", "RUS", "ru_RU", "cyrillic", "%d.%m.%Y", True, False,
            ("ООО", "АО", "ПАО"), ("OOO", "LLC", "JSC", ""), "primer.ru"),
    Profile("UA", "UKR", "uk_UA", "cyrillic", "%d.%m.%Y", True, True,
            ("ТОВ", "ПрАТ"), ("TOV", "LLC", ""), "pryklad.ua"),
    Profile("GR", "GRC", "el_GR", "greek", "%d/%m/%Y", False, True,
            ("Α.Ε.", "Ε.Π.Ε."), ("SA", "AE", ""), "paradeigma.gr"),
    Profile("CN", "CHN", "zh_CN", "han", "%Y年%m月%d日", True, False,
            ("有限公司", "股份有限公司"), ("Co., Ltd.", "Ltd", ""), "lizi.cn"),
    Profile("JP", "JPN", "ja_JP", "japanese", "%Y/%m/%d", True, False,
            ("株式会社", "有限会社"), ("K.K.", "Co., Ltd.", ""), "rei.jp"),
    Profile("KR", "KOR", "ko_KR", "hangul", "%Y.%m.%d", True, False,
            ("주식회사",), ("Co., Ltd.", "Inc", ""), "yeshi.kr"),
    Profile("AE", "ARE", "", "arabic", "%d/%m/%Y", False, True,
            ("ش.ذ.م.م",), ("LLC", "FZE", ""), "mithal.ae"),
)}  # fmt: skip

# Hand-written Arabic names with the Latin spellings found on passports (first) and other
# common spellings (the rest): Faker has no Latin forms for Arabic names.
ARABIC_GIVEN: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("محمد", ("Mohammed", "Muhammad", "Mohamed")), ("أحمد", ("Ahmed", "Ahmad")),
    ("علي", ("Ali",)), ("عمر", ("Omar", "Umar")), ("خالد", ("Khaled", "Khalid")),
    ("يوسف", ("Yousef", "Youssef", "Yusuf")), ("حسن", ("Hassan", "Hasan")),
    ("حسين", ("Hussein", "Hussain", "Husain")), ("إبراهيم", ("Ibrahim", "Ebrahim")),
    ("عبدالله", ("Abdullah", "Abdallah")), ("سعيد", ("Saeed", "Said")),
    ("راشد", ("Rashed", "Rashid")), ("سلطان", ("Sultan",)), ("ماجد", ("Majed", "Majid")),
    ("فاطمة", ("Fatima", "Fatma")), ("عائشة", ("Aisha", "Aysha")), ("مريم", ("Maryam", "Mariam")),
    ("نورة", ("Noura", "Nora")), ("سارة", ("Sara", "Sarah")), ("ليلى", ("Layla", "Leila")),
    ("هند", ("Hind",)), ("زينب", ("Zainab", "Zaynab")), ("منى", ("Mona", "Muna")),
    ("طارق", ("Tariq", "Tarek")), ("ناصر", ("Nasser", "Naser")), ("فيصل", ("Faisal", "Faysal")),
)  # fmt: skip
ARABIC_FAMILY: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("المنصوري", ("Al Mansouri", "Almansoori")), ("الهاشمي", ("Al Hashimi", "Alhashmi")),
    ("الشامسي", ("Al Shamsi", "Alshamsi")), ("الكعبي", ("Al Kaabi", "Alkaabi")),
    ("النعيمي", ("Al Nuaimi", "Alnaimi")), ("المهيري", ("Al Mheiri", "Almheiri")),
    ("الظاهري", ("Al Dhaheri", "Aldhaheri")), ("السويدي", ("Al Suwaidi", "Alsuwaidi")),
    ("القاسمي", ("Al Qasimi", "Alqasimi")), ("المزروعي", ("Al Mazrouei", "Almazrouei")),
    ("حداد", ("Haddad",)), ("خوري", ("Khoury", "Khouri")), ("نصار", ("Nassar",)),
    ("سليمان", ("Suleiman", "Sulaiman")), ("عثمان", ("Othman", "Osman")),
    ("الزعابي", ("Al Zaabi", "Alzaabi")), ("البلوشي", ("Al Balushi", "Albalushi")),
    ("الفلاسي", ("Al Falasi", "Alfalasi")), ("العامري", ("Al Ameri", "Alameri")),
    ("الحمادي", ("Al Hammadi", "Alhammadi")),
)  # fmt: skip

# Sector words that make organisation names: (as written at home, Latin form used abroad).
# For Latin scripts the two are equal; for Cyrillic, Greek, Han and Hangul the Latin form is
# the generator's usual transliteration of the whole name, so only Arabic and Japanese
# (whose kanji ICU reads as Chinese) list their own. Hand-written, synthetic data only.
SECTORS: dict[str, tuple[tuple[str, str], ...]] = {
    code: tuple((w, w) for w in words) for code, words in {
        "DE": ("Handel", "Logistik", "Bau", "Immobilien", "Consulting", "Technik",
               "Transport", "Maschinenbau", "Elektro", "Energie", "Software", "Finanz"),
        "FR": ("Transports", "Immobilier", "Conseil", "Négoce", "Bâtiment", "Logistique",
               "Énergie", "Informatique", "Finance", "Distribution", "Industrie", "Services"),
        "ES": ("Construcciones", "Inmobiliaria", "Transportes", "Consultores", "Logística",
               "Comercial", "Energía", "Servicios", "Inversiones", "Distribuciones",
               "Tecnología", "Finanzas"),
        "PL": ("Handel", "Budownictwo", "Transport", "Nieruchomości", "Logistyka", "Doradztwo",
               "Energia", "Usługi", "Inwestycje", "Technologie", "Dystrybucja", "Finanse"),
        "TR": ("Ticaret", "İnşaat", "Lojistik", "Gayrimenkul", "Enerji", "Danışmanlık",
               "Teknoloji", "Tekstil", "Gıda", "Nakliyat", "Yatırım", "Turizm"),
        "GB": ("Trading", "Logistics", "Construction", "Properties", "Consulting",
               "Engineering", "Transport", "Energy", "Software", "Finance", "Holdings",
               "Services"),
        "RU": ("Торг", "Строй", "Транс", "Инвест", "Логистик", "Энерго", "Технологии",
               "Девелопмент", "Консалтинг", "Импорт", "Финанс", "Сервис"),
        "UA": ("Торг", "Буд", "Транс", "Інвест", "Логістик", "Енерго", "Технології", "Агро",
               "Консалтинг", "Імпорт", "Фінанс", "Сервіс"),
        "GR": ("Εμπορική", "Κατασκευαστική", "Μεταφορική", "Ακίνητα", "Ενέργεια", "Τεχνική",
               "Συμβουλευτική", "Ναυτιλιακή", "Τουριστική", "Επενδυτική", "Λογισμικό",
               "Τροφίμων"),
        "CN": ("科技", "贸易", "物流", "投资", "实业", "电子", "建设", "网络", "传媒", "医药",
               "能源", "食品"),
        "KR": ("무역", "건설", "물산", "산업", "전자", "물류", "개발", "상사", "테크", "에너지",
               "식품", "투자"),
    }.items()
} | {
    "JP": (("商事", "Shoji"), ("物産", "Bussan"), ("建設", "Kensetsu"), ("運輸", "Unyu"),
           ("不動産", "Fudosan"), ("電機", "Denki"), ("工業", "Kogyo"), ("製作所", "Seisakusho"),
           ("精機", "Seiki"), ("通商", "Tsusho"), ("産業", "Sangyo"), ("技研", "Giken")),
    "AE": (("تجارة", "Trading"), ("عقارات", "Real Estate"), ("استثمار", "Investment"),
           ("نقل", "Transport"), ("مقاولات", "Contracting"), ("سياحة", "Tourism"),
           ("صناعة", "Industries"), ("خدمات", "Services"), ("ذهب", "Gold"),
           ("إلكترونيات", "Electronics"), ("شحن", "Shipping"), ("هندسة", "Engineering")),
}  # fmt: skip
