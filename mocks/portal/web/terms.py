"""The vocabularies of the seed documents and of the validation report, in Kazakh, Russian and English.

Part of the portal's one catalogue (:data:`mocks.portal.web.i18n.CATALOGUE` merges it): service descriptions
(their names come from the gateway's :mod:`gateway.cabinet.catalogue`),
the eight fund categories of the KazNEB rules §4, the three access levels of the cooperation agreement,
signer roles, ETSI indications and sub-indications, and the names of the result documents' fields.
Keys are ``prefix_value`` so the pages can look a value up as it appears in a document.
"""

from __future__ import annotations

TERMS: dict[str, tuple[str, str, str]] = {
    # Services (seed documents 000, 001, 002); the names are the gateway's (gateway.cabinet.catalogue)
    "svcd_kazneb.reader-ticket": (
        "Қазақстанның ұлттық электрондық кітапханасында тіркеліп, бірыңғай электрондық оқырман билетін алу "
        "(ҚазҰЭК қағидалары, 18-тармақ). Билет бірден беріледі.",
        "Регистрация в Казахстанской национальной электронной библиотеке и получение единого электронного "
        "читательского билета (Правила КазНЭБ, п. 18). Билет выдаётся сразу.",
        "Register with the Kazakhstan National Electronic Library and receive a single electronic reader ticket "
        "(KazNEB rules, §18). The ticket is issued at once."),
    "svcd_kazneb.fund-submission": (
        "Кітапхана, музей немесе мұрағат қорға объектілерді ұсынады (қағидалардың қосымшасы). Тұрақты комиссия "
        "кемінде тоқсанына бір рет шешім қабылдайды (6–9-тармақтар); оң шешімнен кейін объектілер 10 жұмыс күні "
        "ішінде енгізіледі.",
        "Библиотека, музей или архив передаёт объекты в фонд (приложение к правилам). Постоянная комиссия решает "
        "не реже раза в квартал (пп. 6–9); после положительного решения объекты включаются в течение 10 рабочих "
        "дней.",
        "A library, museum or archive submits objects to the fund (appendix of the rules). A standing commission "
        "decides at least once a quarter (§6–9); after a positive decision the objects are included within 10 "
        "working days."),
    "svcd_elicense.cultural-export": (
        "Е-лицензиялау: өтінішке ЭЦҚ-мен қол қойылады және ЭҮШ арқылы көрсетілетін қызметті берушіге жіберіледі. "
        "7 рәсім (10 мин, 1 сағ, 2 жұмыс күні, 5 жұмыс күні, 15 мин, 1 сағ, 10 мин); нәтиже — куәлік немесе "
        "дәлелді бас тарту.",
        "Е-лицензирование: заявление подписывается ЭЦП и через ШЭП уходит услугодателю. 7 процедур (10 мин, 1 ч, "
        "2 рабочих дня, 5 рабочих дней, 15 мин, 1 ч, 10 мин); результат — свидетельство или мотивированный отказ.",
        "E-licensing: the application is signed with the EDS and goes through the gateway to the provider. "
        "7 steps (10 min, 1 h, 2 working days, 5 working days, 15 min, 1 h, 10 min); the result is a certificate "
        "or a reasoned refusal."),
    # Signer roles (extended key usage)
    "role_individual": ("Жеке тұлға", "Физическое лицо", "Individual"),
    "role_organisation": ("Ұйым қызметкері", "Сотрудник организации", "Organisation employee"),
    "role_first_head": ("Бірінші басшы", "Первый руководитель", "First head"),
    "role_can_sign": ("Қол қою құқығы бар", "Право подписи", "Right to sign"),
    "role_can_sign_financial": ("Қаржы құжаттарына қол қою құқығы", "Право подписи финансовых документов",
                                "Right to sign financial documents"),
    "role_hr": ("Кадр қызметі", "Кадровая служба", "Human resources"),
    "role_employee": ("Қызметкер (қол қою құқығынсыз)", "Сотрудник (без права подписи)",
                      "Employee (no right to sign)"),
    # Reader categories
    "rc_individual": ("Жеке тұлға", "Частное лицо", "Private person"),
    "rc_student": ("Оқушы немесе студент", "Учащийся или студент", "Pupil or student"),
    "rc_researcher": ("Ғалым немесе зерттеуші", "Учёный или исследователь", "Scientist or researcher"),
    "rc_library_staff": ("Кітапхана, музей немесе мұрағат қызметкері", "Сотрудник библиотеки, музея или архива",
                         "Employee of a library, museum or archive"),
    # Participants (rules §2 2))
    "kind_library": ("Кітапхана", "Библиотека", "Library"),
    "kind_museum": ("Музей", "Музей", "Museum"),
    "kind_archive": ("Мұрағат", "Архив", "Archive"),
    # Fund categories (rules §4)
    "fc_printed-publication": ("Баспа өнімі (мерзімді басылымдардың міндетті тегін даналарынан басқа)",
                               "Печатная продукция (кроме обязательных бесплатных экземпляров периодики)",
                               "Printed publications (except legal deposit copies of periodicals)"),
    "fc_rare-book-or-manuscript": ("Ерекше құндылығы бар сирек кітаптар, қолжазбалар, құжаттар мен басылымдар",
                                   "Редкие книги и рукописи, документы и издания особой ценности",
                                   "Rare books and manuscripts, documents and editions of special value"),
    "fc_socially-significant-literature": (
        "Мемлекеттік бағдарламалар шеңберінде шығарылған қоғамдық маңызы бар әдебиеттер",
        "Социально значимая литература, выпущенная в рамках государственных программ",
        "Socially significant literature published under state programmes"),
    "fc_legal-deposit-copy": ("Басылымның міндетті тегін даналары", "Обязательные бесплатные экземпляры изданий",
                              "Legal deposit copies of editions"),
    "fc_research-report-or-dissertation": ("Ғылыми-зерттеу жұмыстарының есептері, авторефераттар, диссертациялар",
                                           "Отчёты о научно-исследовательских работах, авторефераты, диссертации",
                                           "Research reports, dissertation abstracts and dissertations"),
    "fc_local-history-literature": ("Өлкетану әдебиеті", "Краеведческая литература", "Local history literature"),
    "fc_special-edition-for-visually-impaired": (
        "Зағип және нашар көретін азаматтарға арналған арнайы басылымдар",
        "Специальные издания для незрячих и слабовидящих граждан",
        "Special editions for blind and visually impaired people"),
    "fc_copyright-protected-copy": ("Авторлық құқықпен қорғалатын құжаттардың электрондық көшірмелері",
                                    "Электронные копии документов, охраняемых авторским правом",
                                    "Electronic copies of copyright-protected documents"),
    # Access levels (cooperation agreement, partner rights)
    "al_open-full-download": ("а) Шектеусіз пайдалану, толық нұсқасын көшіріп алу мүмкіндігімен",
                              "а) Без ограничений, с возможностью скачать полную версию",
                              "(a) Unrestricted use with download of the full work"),
    "al_open-read-only": ("б) «Тек оқу үшін» режимінде", "б) В режиме «только чтение»", "(b) Read-only"),
    "al_first-24-pages": ("в) Бастапқы 24 бетті көшіру мүмкіндігімен", "в) С возможностью копировать первые 24 "
                          "страницы", "(c) With a copy of the first 24 pages"),
    # Export purposes and heritage statuses
    "purpose_exhibition": ("Көрме", "Выставка", "Exhibition"),
    "purpose_restoration": ("Қалпына келтіру", "Реставрация", "Restoration"),
    "purpose_research": ("Ғылыми зерттеу", "Научное исследование", "Research"),
    "purpose_other": ("Басқа", "Другое", "Other"),
    "hs_none": ("Мәртебесі жоқ", "Без статуса", "No heritage status"),
    "hs_local-significance": ("Жергілікті маңызы бар", "Местного значения", "Local significance"),
    "hs_national-significance": ("Республикалық маңызы бар", "Республиканского значения", "National significance"),
    "hs_national-treasure": ("Ұлттық қазына", "Национальное достояние", "National treasure"),
    # The validation report
    "report_title": ("Қолтаңбаны тексеру нәтижесі", "Результат проверки подписи", "Signature validation report"),
    "indication": ("Қорытынды", "Итог", "Indication"),
    "ind_TOTAL_PASSED": ("Қолтаңба жарамды", "Подпись действительна", "The signature is valid"),
    "ind_TOTAL_FAILED": ("Қолтаңба жарамсыз", "Подпись недействительна", "The signature is invalid"),
    "ind_INDETERMINATE": ("Анықталмады", "Не определено", "Indeterminate"),
    "signer": ("Қол қоюшы", "Подписант", "Signer"),
    "roles": ("Рөлдері", "Роли", "Roles"),
    "key_purpose": ("Кілттің мақсаты", "Назначение ключа", "Key purpose"),
    "chain": ("Сертификаттар тізбегі", "Цепочка сертификатов", "Certificate chain"),
    "until": ("{date} дейін", "до {date}", "until {date}"),
    "revocation": ("Қайтарып алу мәртебесі", "Статус отзыва", "Revocation status"),
    "rev_good": ("Қайтарып алынбаған", "Не отозван", "Not revoked"),
    "rev_revoked": ("Қайтарып алынған", "Отозван", "Revoked"),
    "rev_unknown": ("Белгісіз", "Неизвестно", "Unknown"),
    "rev_not_checked": ("Тексерілмеді", "Не проверялся", "Not checked"),
    "via": ("көзі: {source}", "источник: {source}", "source: {source}"),
    "algorithms": ("Алгоритмдер", "Алгоритмы", "Algorithms"),
    "validation_time": ("Тексерілген уақыты", "Время проверки", "Validated at"),
    "errors": ("Қателер", "Ошибки", "Errors"),
    "warnings": ("Ескертулер", "Предупреждения", "Warnings"),
    "format": ("Пішімі", "Формат", "Format"),
    "si_FORMAT_FAILURE": ("Қолтаңба рұқсат етілген пішімде емес.", "Подпись не в допустимом формате.",
                          "The signature is not in an accepted form."),
    "si_HASH_FAILURE": ("Қол қойылғаннан кейін құжат өзгертілген: дайджест сәйкес емес.",
                        "Документ изменён после подписания: дайджест не совпадает.",
                        "The document was changed after signing: the digest does not match."),
    "si_SIG_CRYPTO_FAILURE": ("Қолтаңба мәні тексерілмеді.", "Значение подписи не прошло проверку.",
                              "The signature value does not verify."),
    "si_REVOKED": ("Сертификат қайтарып алынған.", "Сертификат отозван.", "The certificate has been revoked."),
    "si_REVOKED_NO_POE": ("Сертификат қайтарып алынған, қол қою уақытының дәлелі жоқ.",
                          "Сертификат отозван, доказательства времени подписания нет.",
                          "The certificate was revoked and there is no proof of when it signed."),
    "si_REVOKED_CA_NO_POE": ("Қол қоюшы сертификатын берген куәландырушы орталықтың сертификаты қайтарып алынған.",
                             "Сертификат удостоверяющего центра, выдавшего сертификат подписанта, отозван.",
                             "The certificate of the CA that issued the signer's certificate has been revoked."),
    "si_EXPIRED": ("Сертификаттың мерзімі өткен.", "Срок сертификата истёк.", "The certificate has expired."),
    "si_OUT_OF_BOUNDS_NO_POE": ("Сертификаттың мерзімі өткен, қол қою уақытының дәлелі жоқ.",
                                "Срок сертификата истёк, доказательства времени подписания нет.",
                                "The certificate has expired and there is no proof the signature existed before."),
    "si_NOT_YET_VALID": ("Сертификат әлі жарамды емес.", "Сертификат ещё не действует.",
                         "The certificate is not valid yet."),
    "si_NO_SIGNING_CERTIFICATE_FOUND": ("Қол қоюшының сертификаты табылмады.", "Сертификат подписанта не найден.",
                                        "The signer's certificate was not found."),
    "si_NO_CERTIFICATE_CHAIN_FOUND": ("Сертификатты сенімді куәландырушы орталық бермеген.",
                                      "Сертификат выдан не доверенным удостоверяющим центром.",
                                      "The certificate was not issued by a trusted certification authority."),
    "si_CHAIN_CONSTRAINTS_FAILURE": ("Сертификат саясат талаптарына сай емес (мысалы, бұл қол қою кілті емес).",
                                     "Сертификат не отвечает требованиям политики (например, это не ключ подписи).",
                                     "The certificate does not meet the policy (e.g. it is not a signing key)."),
    "si_SIG_CONSTRAINTS_FAILURE": ("Қолтаңба саясат талаптарына сай емес.", "Подпись не отвечает требованиям политики.",
                                   "The signature does not meet the policy's constraints."),
    "si_CRYPTO_CONSTRAINTS_FAILURE": ("Қолтаңба алгоритміне рұқсат жоқ.", "Алгоритм подписи не разрешён.",
                                      "The signature algorithm is not allowed."),
    "si_TRY_LATER": ("Сертификат мәртебесін тексеру мүмкін болмады, кейінірек қайталаңыз.",
                     "Не удалось проверить статус сертификата, повторите позже.",
                     "The certificate's status could not be checked; try again later."),
    "si_SIGNED_DATA_NOT_FOUND": ("Қолтаңба өтініш құжатын қамтымайды.", "Подпись не охватывает документ заявления.",
                                 "The signature does not cover the application document."),
    # Result documents
    "r_ticket_number": ("Билет нөмірі", "Номер билета", "Ticket number"),
    "r_holder": ("Иесі", "Владелец", "Holder"),
    "r_reader_category": ("Оқырман санаты", "Категория читателя", "Reader category"),
    "r_issued_at": ("Берілген уақыты", "Дата выдачи", "Issued at"),
    "r_valid_until": ("Жарамдылық мерзімі", "Действителен до", "Valid until"),
    "r_perpetual": ("Мерзімсіз", "Бессрочно", "No end date"),
    "r_issuer": ("Берген", "Выдал", "Issued by"),
    "r_access_rights": ("Қолжетімділік", "Доступ", "Access"),
    "r_status": ("Мәртебесі", "Статус", "Status"),
    "ts_issued": ("Берілді", "Выдан", "Issued"),
    "ts_already-issued": ("Бұрын берілген", "Выдан ранее", "Issued earlier"),
    "r_submission_number": ("Ұсыныс нөмірі", "Номер передачи", "Submission number"),
    "r_participant": ("Қатысушы", "Участник", "Participant"),
    "r_decision": ("Комиссия шешімі", "Решение комиссии", "Commission decision"),
    "dec_include": ("Қорға енгізу", "Включить в фонд", "Include in the fund"),
    "dec_not-include": ("Қорға енгізбеу", "Не включать в фонд", "Do not include in the fund"),
    "dec_excluded": ("Қордан шығарылды", "Исключено из фонда", "Excluded from the fund"),
    "r_votes_label": ("Дауыс беру", "Голосование", "Votes"),
    "r_votes": ("{votes_for} — жақтап, {votes_against} — қарсы ({members} мүше)",
                "за — {votes_for}, против — {votes_against} (членов: {members})",
                "{votes_for} for, {votes_against} against ({members} members)"),
    "r_decided_at": ("Шешім уақыты", "Дата решения", "Decided at"),
    "r_inclusion_due": ("Қорға енгізу мерзімі", "Срок включения в фонд", "Inclusion due by"),
    "r_reason": ("Себебі", "Причина", "Reason"),
    "r_exclusion_ground": ("Шығару негізі", "Основание исключения", "Ground for exclusion"),
    "os_included": ("Енгізілді", "Включён", "Included"),
    "os_not-included": ("Енгізілмеді", "Не включён", "Not included"),
    "os_excluded": ("Шығарылды", "Исключён", "Excluded"),
    "r_registration_number": ("Тіркеу нөмірі", "Регистрационный номер", "Registration number"),
    "r_provider": ("Қызмет беруші", "Услугодатель", "Provider"),
    "r_outcome": ("Шешім", "Решение", "Outcome"),
    "out_issued": ("Куәлік берілді", "Свидетельство выдано", "Certificate issued"),
    "out_refused": ("Дәлелді бас тарту", "Мотивированный отказ", "Reasoned refusal"),
    "r_certificate_number": ("Куәлік нөмірі", "Номер свидетельства", "Certificate number"),
    "r_refusal_step": ("Бас тартқан рәсім", "Этап отказа", "Refused at the step"),
    "r_legal_basis": ("Құқықтық негіз", "Правовое основание", "Legal basis"),
    "legal_basis_export": (
        "«Мәдени құндылықтарды уақытша әкету құқығына куәлік беру» мемлекеттік көрсетілетін қызмет регламенті "
        "(Ақмола облысы), 5-тармақ {sub})-тармақша; мемлекеттік көрсетілетін қызмет стандарты (Мәдениет және "
        "спорт министрінің 22.04.2015 № 146 бұйрығы, тіркеу № 11238), 9-1-тармақ",
        "Регламент государственной услуги «Выдача свидетельства на право временного вывоза культурных ценностей» "
        "(Акмолинская область), п. 5 подп. {sub}); Стандарт государственной услуги (приказ Министра культуры и "
        "спорта № 146 от 22.04.2015, рег. № 11238), п. 9-1",
        "Regulation of the public service «Issuing a certificate for the right of temporary export of cultural "
        "values» (Akmola region), p. 5 subp. {sub}); Standard of the public service (order of the Minister of "
        "Culture and Sports No. 146 of 22.04.2015, reg. No. 11238), p. 9-1"),
    "r_steps": ("Рәсімдер", "Процедуры", "Steps"),
    "r_fields": ("Нәтиже деректері", "Данные результата", "Result details"),
}
