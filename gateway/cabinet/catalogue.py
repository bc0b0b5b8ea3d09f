"""Names people read, in Kazakh, Russian and English: application statuses, back-end steps, services.

The error messages live with their codes in :mod:`gateway.errors`; this catalogue holds everything else the
cabinet shows. These are the one set of names: the mock portal shows the same service names on its cards,
forms and cabinet. Unknown keys fall back to the key itself (a provider's new step still shows its code).
"""

from __future__ import annotations

from gateway.errors import DEFAULT_LANGUAGE

STATUSES: dict[str, dict[str, str]] = {
    "accepted": {"kk": "Қабылданды", "ru": "Принято", "en": "Accepted"},
    "routed": {"kk": "Жеткізушіге жіберілді", "ru": "Направлено поставщику", "en": "Sent to the provider"},
    "in_progress": {"kk": "Орындалуда", "ru": "Исполняется", "en": "In progress"},
    "completed": {"kk": "Орындалды", "ru": "Исполнено", "en": "Completed"},
    "refused": {"kk": "Дәлелді бас тарту", "ru": "Мотивированный отказ", "en": "Reasoned refusal"},
    "failed": {"kk": "Орындалмады", "ru": "Не исполнено", "en": "Failed"},
    "stopped": {"kk": "Жеткізу тоқтатылды", "ru": "Доставка остановлена", "en": "Delivery stopped"},
}

STEPS: dict[str, dict[str, str]] = {
    # E-licensing, the regulation of "certificate for the right of temporary export of cultural values"
    "registration": {"kk": "Құжаттарды қабылдау және «Е-лицензиялау» жүйесінде тіркеу",
                     "ru": "Приём документов и регистрация в ИС «Е-лицензирование»",
                     "en": "Documents received and registered in E-licensing"},
    "executor-assigned": {"kk": "Басшының жауапты орындаушыны анықтауы",
                          "ru": "Определение руководителем ответственного исполнителя",
                          "en": "The head assigns the responsible executor"},
    "documents-checked": {"kk": "Жауапты орындаушының құжаттарды тексеруі",
                          "ru": "Проверка документов ответственным исполнителем",
                          "en": "The executor checks the documents"},
    "expert-conclusion": {"kk": "Сараптамалық комиссияның қорытындысы", "ru": "Заключение экспертной комиссии",
                          "en": "The expert commission gives its conclusion"},
    "certificate-prepared": {"kk": "Куәлікті дайындау", "ru": "Подготовка свидетельства",
                             "en": "The certificate is prepared"},
    "head-signed": {"kk": "Басшының куәлікке немесе бас тарту туралы дәлелді жауапқа қол қоюы",
                    "ru": "Подписание руководителем свидетельства или мотивированного отказа",
                    "en": "The head signs the certificate or the reasoned refusal"},
    "issued": {"kk": "Куәлікті немесе бас тарту туралы дәлелді жауапты беру",
               "ru": "Выдача свидетельства или мотивированного отказа",
               "en": "The certificate or the reasoned refusal is issued"},
    # KazNEB fund: the library commission's desk
    "registered": {"kk": "ҚазҰЭК-те тіркелді", "ru": "Зарегистрировано в КазНЭБ", "en": "Registered with KazNEB"},
    "commission": {"kk": "Комиссияның шешімі", "ru": "Решение комиссии", "en": "The commission's decision"},
    # Software deposit with the operator (rules No. 146/НҚ, §8, §9, §15–17)
    "application-registered": {"kk": "Өтінім өтінімдер тізілімінде тіркелді",
                               "ru": "Заявка зарегистрирована в реестре заявок",
                               "en": "Application registered in the register of applications"},
    "repository-formed": {"kk": "Репозиторий қалыптастырылды", "ru": "Репозиторий сформирован",
                          "en": "Repository formed"},
    "deposit-taken": {"kk": "Бағдарламалық қамтылым мен жеткізгіш қабылданды", "ru": "ПО и носитель приняты",
                      "en": "Software and medium taken"},
    "act-checked": {"kk": "Акт жеткізгіштегі мәліметтермен салыстырылды", "ru": "Акт сверен с содержимым носителя",
                    "en": "Act checked against the medium"},
    "signed": {"kk": "Акт пен келісімге немесе дәлелді бас тартуға қол қойылды",
               "ru": "Подписаны акт и соглашение или мотивированный отказ",
               "en": "Act and agreement, or the reasoned refusal, signed"},
}

SERVICES: dict[str, dict[str, str]] = {
    "kazneb.reader-ticket": {"kk": "ҚазҰЭК бірыңғай электрондық оқырман билеті",
                             "ru": "Единый электронный читательский билет КазНЭБ",
                             "en": "KazNEB single electronic reader ticket"},
    "kazneb.fund-submission": {"kk": "ҚазҰЭК қорына объектілерді енгізуге өтінім",
                               "ru": "Заявка на включение объектов в фонд КазНЭБ",
                               "en": "Submission of objects to the KazNEB fund"},
    "elicense.cultural-export": {"kk": "Мәдени құндылықтарды уақытша әкету құқығына куәлік беру",
                                 "ru": "Выдача свидетельства на право временного вывоза культурных ценностей",
                                 "en": "Certificate for the right of temporary export of cultural values"},
    "egov.software-deposit": {"kk": "Бағдарламалық қамтылым мен бастапқы кодтарды есепке алуға және сақтауға беру",
                              "ru": "Передача ПО и исходных кодов на учёт и хранение оператору",
                              "en": "Software and source code deposit with the operator"},
}


def name(table: dict[str, dict[str, str]], key: str | None, language: str, fallback: str | None = None) -> str | None:
    """The name of ``key`` in ``language`` (English, then ``fallback``, then the key itself when unknown)."""
    if key is None:
        return None
    entry = table.get(key)
    if entry is None:
        return fallback or key
    return entry.get(language) or entry.get(DEFAULT_LANGUAGE) or fallback or key
