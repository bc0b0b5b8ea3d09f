"""Every text the portal shows, in Kazakh, Russian and English, and the helpers that pick one.

``CATALOGUE`` maps a key to ``(kk, ru, en)``. The pages call :func:`t` with the request's language; a
missing key is a bug (KeyError), never a silent blank. The vocabularies of the seed documents (fund
categories, access levels, roles, sub-indications, result fields) are in :mod:`mocks.portal.web.terms`
and merged in here, so this is the one catalogue to look things up in.
"""

from __future__ import annotations

from gateway.cabinet.catalogue import SERVICES
from mocks.portal.web.deposit_terms import DEPOSIT_TERMS
from mocks.portal.web.terms import TERMS

LANGUAGES = ("kk", "ru", "en")
DEFAULT_LANGUAGE = "kk"
LANGUAGE_LABELS = {"kk": "қаз", "ru": "рус", "en": "eng"}
"The language switch in the header."

_PAGES: dict[str, tuple[str, str, str]] = {
    # Site chrome
    "site_tagline": ("Электрондық үкімет порталы — сынақ стенді", "Портал электронного правительства — тестовый стенд",
                     "E-government portal — test bench"),
    "nav_home": ("Басты бет", "Главная", "Home"),
    "nav_cabinet": ("Жеке кабинет", "Личный кабинет", "Personal cabinet"),
    "language": ("Тіл", "Язык", "Language"),
    "test_banner": ("Бұл — сынақ порталы: барлық адамдар, кілттер мен ұйымдар ойдан шығарылған.",
                    "Это тестовый портал: все люди, ключи и организации вымышлены.",
                    "This is a test portal: every person, key and organisation here is fictitious."),
    "footer": ("Сынақ ортасы. Өтініштер электрондық үкімет шлюзі (ЭҮШ) арқылы жіберіледі.",
               "Тестовая среда. Заявления отправляются через шлюз электронного правительства (ШЭП).",
               "Test environment. Applications go through the e-government gateway (SHEP)."),
    "you_are": ("Сіз: {name}", "Вы: {name}", "You are: {name}"),
    # Home
    "home_title": ("Сынақ порталына қош келдіңіз", "Добро пожаловать на тестовый портал",
                   "Welcome to the test portal"),
    "home_intro": ("Кім екеніңізді таңдаңыз (сынақ ЭЦҚ иесі), содан кейін қызметті таңдаңыз. Портал өтінішке сіздің "
                   "кілтіңізбен қол қойып, оны ЭҮШ арқылы жібереді; нәтиже жеке кабинетте шығады.",
                   "Выберите, кто вы (владелец тестовой ЭЦП), затем выберите услугу. Портал подпишет заявление вашим "
                   "ключом и отправит его через ШЭП; результат появится в личном кабинете.",
                   "Choose who you are (the holder of a test digital signature), then choose a service. The portal "
                   "signs the application with your key and sends it through the gateway; the result appears in "
                   "the personal cabinet."),
    "login_title": ("Кіру", "Вход", "Sign in"),
    "login_intro": ("Кім екеніңізді таңдаңыз: сынақ ЭЦҚ иелерінің бірі. Портал сізге тек осы адамның жеке кабинетін "
                    "көрсетеді (қызметкерге — ұйымының кабинетін де).",
                    "Выберите, кто вы: одного из владельцев тестовой ЭЦП. Портал покажет вам только личный кабинет "
                    "этого человека (сотруднику — и кабинет его организации).",
                    "Choose who you are: one of the holders of a test digital signature. The portal shows you only "
                    "that person's cabinet (and, for an employee, their organisation's)."),
    "change_person": ("Басқа адам ретінде кіру", "Войти другим человеком", "Sign in as someone else"),
    "log_out": ("Шығу", "Выйти", "Sign out"),
    "step_person": ("1. Кім ретінде кіресіз?", "1. Кто вы?", "1. Who are you?"),
    "step_service": ("2. Қызметті таңдаңыз", "2. Выберите услугу", "2. Choose a service"),
    "group_citizens": ("Азаматтар", "Граждане", "Citizens"),
    "group_employees": ("Ұйым қызметкерлері", "Сотрудники организаций", "Organisation employees"),
    "group_special": ("Арнайы сынақ жағдайлары", "Особые тестовые случаи", "Special test cases"),
    "group_special_hint": ("Бұл сертификаттармен қол қойылған өтінішті шлюз қабылдамауы тиіс.",
                           "Заявление, подписанное этими сертификатами, шлюз должен отклонить.",
                           "The gateway must refuse an application signed with these certificates."),
    "person_citizen": ("Жеке тұлға, туған күні {birth}", "Физическое лицо, дата рождения {birth}",
                       "Individual, born {birth}"),
    "person_role": ("Рөлі: {roles}", "Роль: {roles}", "Role: {roles}"),
    "special_expired": ("Сертификаттың мерзімі {date} өтіп кеткен", "Срок сертификата истёк {date}",
                        "The certificate expired on {date}"),
    "special_future": ("Сертификат тек {date} бастап жарамды", "Сертификат действует только с {date}",
                       "The certificate is valid only from {date}"),
    "special_stranger": ("Сертификатты сенімсіз куәландырушы орталық берген",
                         "Сертификат выдан недоверенным удостоверяющим центром",
                         "The certificate was issued by an untrusted certification authority"),
    "test_note": ("Сынақ туралы ескерту", "Примечание для теста", "Test note"),
    "note_aigerim": ("Жеке тұлға, әдепкі өтініш беруші", "Физическое лицо, заявитель по умолчанию",
                     "Individual citizen, the default applicant"),
    "note_daniyar": ("Жеке тұлға, екінші өтініш беруші (мысалы, құжаттағы басқа адамның ЖСН-і үшін)",
                     "Физическое лицо, второй заявитель (например, для чужого ИИН в документе)",
                     "Individual citizen, a second applicant (e.g. someone else's IIN in a document)"),
    "note_saule": ("2000 жылдары туған жеке тұлға, аты-жөнінің барлық бөлігінде қазақ әріптері бар",
                   "Физическое лицо 2000-х годов рождения, казахские буквы во всех частях имени",
                   "Individual born in the 2000s, Kazakh letters in every name field"),
    "note_expired": ("Сертификаттарының мерзімі бір жыл бұрын өткен: шлюз қабылдамауы тиіс",
                     "Сертификаты истекли год назад: шлюз должен отклонить",
                     "Certificates expired a year ago: the gateway must refuse"),
    "note_future": ("Сертификаттары 30 күннен кейін ғана күшіне енеді: шлюз қабылдамауы тиіс",
                    "Сертификаты начнут действовать через 30 дней: шлюз должен отклонить",
                    "Certificates start in 30 days: the gateway must refuse"),
    "note_stranger": ("ҰКО-ға ұқсас, бірақ сенімсіз орталық берген сертификат: шлюз қабылдамауы тиіс",
                      "Сертификат, похожий на НУЦ, но от недоверенного центра: шлюз должен отклонить",
                      "An NCA-like certificate from an untrusted authority: the gateway must refuse"),
    "note_kitap-head": ("Кітапхана директоры (бірінші басшы)", "Директор библиотеки (первый руководитель)",
                        "Director of the library (first head)"),
    "note_kitap-signer": ("Қол қою құқығы бар кітапхана қызметкері", "Сотрудник библиотеки с правом подписи",
                          "Library employee with the right to sign"),
    "note_kitap-clerk": ("Қол қою құқығы жоқ кітапхана қызметкері: ұйым өтініштерін шлюз қабылдамауы тиіс",
                         "Сотрудник библиотеки без права подписи: заявления организации шлюз должен отклонить",
                         "Library employee without the right to sign: the gateway must refuse organisation requests"),
    "note_murager-head": ("Музей директоры (бірінші басшы)", "Директор музея (первый руководитель)",
                          "Director of the museum (first head)"),
    "note_murager-signer": ("Қол қою құқығы бар музей қызметкері", "Сотрудник музея с правом подписи",
                            "Museum employee with the right to sign"),
    "note_murager-clerk": ("Қол қою құқығы жоқ музей қызметкері: ұйым өтініштерін шлюз қабылдамауы тиіс",
                           "Сотрудник музея без права подписи: заявления организации шлюз должен отклонить",
                           "Museum employee without the right to sign: the gateway must refuse organisation requests"),
    "choose": ("Таңдау", "Выбрать", "Choose"),
    "chosen": ("Таңдалды", "Выбрано", "Chosen"),
    "apply": ("Өтініш беру", "Подать заявление", "Apply"),
    "open_cabinet": ("Жеке кабинетті ашу", "Открыть личный кабинет", "Open the personal cabinet"),
    "open_org_cabinet": ("Ұйымның кабинеті", "Кабинет организации", "The organisation's cabinet"),
    "for_organisations": ("Ұйымдарға арналған: басшы немесе қол қою құқығы бар қызметкер қол қояды.",
                          "Для организаций: подписывает руководитель или сотрудник с правом подписи.",
                          "For organisations: signed by the head or an employee with the right to sign."),
    "org_only": ("Бұл қызмет тек ұйым қызметкерлеріне (БСН бар сертификат) арналған. Ұйым қызметкерін таңдаңыз.",
                 "Эта услуга только для сотрудников организаций (сертификат с БИН). Выберите сотрудника организации.",
                 "This service is only for organisation employees (a certificate with a BIN). Choose an "
                 "organisation employee."),
    "org_only_title": ("Қызмет тек ұйымдарға арналған", "Услуга только для организаций",
                       "A service for organisations only"),
    "for_individuals": ("Жеке тұлғаларға арналған: жеке ЭЦҚ-мен қол қойылады.",
                        "Для физических лиц: подписывается личной ЭЦП.",
                        "For individuals: signed with a personal digital signature."),
    # Forms
    "form_applicant": ("Өтініш беруші", "Заявитель", "Applicant"),
    "form_from_certificate": ("Бұл деректер ЭЦҚ сертификатынан алынған.", "Эти данные взяты из сертификата ЭЦП.",
                              "These details come from the digital signature certificate."),
    "full_name": ("Т.А.Ә.", "Ф.И.О.", "Full name"),
    "birth_date": ("Туған күні", "Дата рождения", "Date of birth"),
    "organisation": ("Ұйым", "Организация", "Organisation"),
    "iin": ("ЖСН", "ИИН", "IIN"),
    "bin": ("БСН", "БИН", "BIN"),
    "form_details": ("Өтініш деректері", "Данные заявления", "Application details"),
    "required_hint": ("* — міндетті өріс", "* — обязательное поле", "* — required field"),
    "submit_sign": ("Қол қою және жіберу", "Подписать и отправить", "Sign and send"),
    "submit_hint": ("Портал құжатқа сіздің кілтіңізбен өз серверінде қол қояды (бұл — сынақ) және оны ЭҮШ-тің "
                    "синхронды арнасы арқылы жібереді.",
                    "Портал подпишет документ вашим ключом на своём сервере (это тест) и отправит его через "
                    "синхронный канал ШЭП.",
                    "The portal signs the document with your key on its own server (this is a test) and sends it "
                    "through the gateway's synchronous channel."),
    "form_has_errors": ("Өтініште қателер бар — төменде белгіленген өрістерді түзетіңіз.",
                        "В заявлении есть ошибки — исправьте отмеченные ниже поля.",
                        "The application has errors — correct the fields marked below."),
    "back": ("Артқа", "Назад", "Back"),
    "remove": ("Жою", "Удалить", "Remove"),
    "not_found_title": ("Бет табылмады", "Страница не найдена", "Page not found"),
    "unknown_person": ("Мұндай сынақ адамы жоқ. Басты беттен адамды таңдаңыз.",
                       "Такого тестового человека нет. Выберите человека на главной странице.",
                       "There is no such test person. Choose a person on the home page."),
    "unknown_service": ("Мұндай қызмет жоқ.", "Такой услуги нет.", "There is no such service."),
    # Reader registration
    "f_email": ("Электрондық пошта", "Электронная почта", "E-mail"),
    "f_phone": ("Ұялы телефон", "Мобильный телефон", "Mobile phone"),
    "f_phone_hint": ("Мысалы +7 701 123 45 67 немесе 8 701 123 45 67",
                     "Например +7 701 123 45 67 или 8 701 123 45 67",
                     "For example +7 701 123 45 67 or 8 701 123 45 67"),
    "sample_yurt-set": ("Көрмеге арналған қазіргі киіз үй жабдықтары", "Современное убранство юрты для выставки",
                        "Modern felt yurt furnishings for an exhibition"),
    "sample_dombra": ("Қазіргі шебер жасаған екі ішекті домбыра", "Двухструнная домбра работы современного мастера",
                      "Two-stringed dombra by a contemporary master"),
    "f_reader_category": ("Оқырман санаты", "Категория читателя", "Reader category"),
    "f_language": ("Хабарламалар тілі", "Язык уведомлений", "Language of notifications"),
    "lang_kk": ("Қазақ тілі", "Казахский", "Kazakh"),
    "lang_ru": ("Орыс тілі", "Русский", "Russian"),
    "lang_en": ("Ағылшын тілі", "Английский", "English"),
    "f_consent": ("Дербес деректерімді жинауға және өңдеуге келісемін",
                  "Согласен(на) на сбор и обработку моих персональных данных",
                  "I consent to the collection and processing of my personal data"),
    # Fund submission
    "f_participant": ("Қатысушы (ұйым)", "Участник (организация)", "Participant (organisation)"),
    "f_kind": ("Қатысушы түрі", "Вид участника", "Kind of participant"),
    "f_head_name": ("Басшының Т.А.Ә.", "Ф.И.О. руководителя", "Head's full name"),
    "f_objects": ("Қор объектілері", "Объекты фонда", "Fund objects"),
    "object_n": ("{n}-объект", "Объект {n}", "Object {n}"),
    "f_title": ("Атауы", "Название", "Title"),
    "f_category": ("Санаты (қағидалардың 4-тармағы)", "Категория (п. 4 правил)", "Category (rules §4)"),
    "f_pages": ("Көлемі, бет", "Объём, страниц", "Volume, pages"),
    "f_format": ("Цифрлау форматы", "Формат оцифровки", "Digitisation format"),
    "f_access": ("Қолжетімділік деңгейі", "Уровень доступа", "Access level"),
    "f_agreement": ("Авторлық келісімнің нөмірі", "Номер авторского соглашения", "Author's agreement reference"),
    "f_agreement_hint": ("Әр құжатқа автормен келісім қоса беріледі (келісімнің 2.2.4-тармағы).",
                         "К каждому документу прилагается соглашение с автором (п. 2.2.4 соглашения).",
                         "Each document comes with the author's agreement (cooperation agreement, 2.2.4)."),
    "add_object": ("Объект қосу", "Добавить объект", "Add an object"),
    # E-licensing
    "f_contact_phone": ("Байланыс телефоны", "Контактный телефон", "Contact phone"),
    "f_purpose": ("Әкету мақсаты", "Цель вывоза", "Purpose of the export"),
    "f_purpose_details": ("Мақсат туралы толығырақ", "Подробнее о цели", "Details of the purpose"),
    "f_destination": ("Баратын ел", "Страна назначения", "Destination country"),
    "f_export_from": ("Әкету күні", "Дата вывоза", "Export date"),
    "f_return_by": ("Қайтару күні", "Дата возврата", "Return date"),
    "f_export_hint": ("Уақытша әкету мерзімі 6 айдан аспайды.", "Срок временного вывоза — не более 6 месяцев.",
                      "A temporary export lasts at most 6 months."),
    "f_items": ("Мәдени құндылықтар", "Культурные ценности", "Cultural values"),
    "item_n": ("{n}-зат", "Предмет {n}", "Item {n}"),
    "f_item_name": ("Атауы", "Наименование", "Name"),
    "f_item_description": ("Сипаттамасы", "Описание", "Description"),
    "f_quantity": ("Саны", "Количество", "Quantity"),
    "f_value": ("Сақтандыру құны, теңге", "Страховая стоимость, тенге", "Insured value, tenge"),
    "f_heritage": ("Тарихи-мәдени мәртебесі", "Историко-культурный статус", "Heritage status"),
    "add_item": ("Зат қосу", "Добавить предмет", "Add an item"),
    "photo_note": ("Әр заттың фотосуреті қоса беріледі (сынақ файлы).",
                   "Фотография каждого предмета прилагается (тестовый файл).",
                   "A photo of each item is attached (a test file)."),
    "f_attachments": ("Қоса берілетін құжаттар", "Прилагаемые документы", "Attached documents"),
    "att_agreement": ("Көрме (қызмет) туралы шарт — қоса берілді", "Договор о выставке (услуге) — приложен",
                      "Exhibition (service) agreement — attached"),
    "att_insurance": ("Сақтандыру полисі — қоса берілді", "Страховой полис — приложен", "Insurance policy — attached"),
    "f_expert_opinion": ("Сараптама қорытындысы қоса берілді", "Экспертное заключение приложено",
                         "Expert opinion attached"),
    "f_expert_hint": ("Тарихи-мәдени мәртебесі бар заттарға сараптама қорытындысы қажет, әйтпесе бас тартылады.",
                      "Для предметов с историко-культурным статусом нужно экспертное заключение, иначе будет отказ.",
                      "Items with a heritage status need an expert opinion; without it the application is refused."),
    # Validation
    "v_required": ("Бұл өрісті толтырыңыз.", "Заполните это поле.", "Please fill in this field."),
    "v_email": ("Электрондық пошта мекенжайы name@example.kz түрінде болуы керек.",
                "Адрес электронной почты должен быть вида name@example.kz.",
                "The e-mail address must look like name@example.kz."),
    "v_phone": ("Телефон нөмірі +7 немесе 8-ден кейін 10 цифр, мысалы +7 701 123 45 67.",
                "Номер телефона — 10 цифр после +7 или 8, например +7 701 123 45 67.",
                "The phone number is 10 digits after +7 or 8, e.g. +7 701 123 45 67."),
    "v_choice": ("Тізімнен мән таңдаңыз.", "Выберите значение из списка.", "Choose a value from the list."),
    "v_consent": ("Дербес деректерді өңдеуге келісімсіз тіркелу мүмкін емес.",
                  "Без согласия на обработку персональных данных регистрация невозможна.",
                  "Registration is not possible without consent to the processing of personal data."),
    "v_too_long": ("Тым ұзын: ең көбі {max} таңба.", "Слишком длинно: не более {max} символов.",
                   "Too long: at most {max} characters."),
    "v_int_range": ("{min}–{max} аралығындағы бүтін сан енгізіңіз.", "Введите целое число от {min} до {max}.",
                    "Enter a whole number from {min} to {max}."),
    "v_money": ("Соманы теңгемен енгізіңіз, мысалы 850000 немесе 850000.50.",
                "Введите сумму в тенге, например 850000 или 850000.50.",
                "Enter an amount in tenge, e.g. 850000 or 850000.50."),
    "v_date": ("Күнді таңдаңыз.", "Выберите дату.", "Choose a date."),
    "v_date_past": ("Әкету күні өткен күн бола алмайды.", "Дата вывоза не может быть в прошлом.",
                    "The export date cannot be in the past."),
    "v_return_before": ("Қайтару күні әкету күнінен бұрын бола алмайды.",
                        "Дата возврата не может быть раньше даты вывоза.",
                        "The return date cannot be before the export date."),
    "v_rows": ("Кемінде 1, ең көбі {max} жол болуы керек.", "Нужно от 1 до {max} строк.",
               "Give from 1 to {max} entries."),
    "v_other_person": ("Басқа адамды таңдаңыз.", "Выберите другого человека.", "Choose another person."),
    # Bad cases
    "bad_title": ("Қате жағдайды сынау", "Проверить ошибочный случай", "Test a bad case"),
    "bad_hint": ("Шлюз мұндай өтінішті қабылдамауы тиіс. Қалыпты өтініш үшін «Жоқ» қалдырыңыз.",
                 "Шлюз должен отклонить такое заявление. Для обычного заявления оставьте «Нет».",
                 "The gateway must refuse such an application. Leave “None” for a normal application."),
    "bad_none": ("Жоқ — қалыпты өтініш", "Нет — обычное заявление", "None — a normal application"),
    "bad_other": ("Басқа адамның атынан: құжатқа басқа адамның ЖСН/БСН-і жазылады, ал қолды мен қоямын",
                  "От имени другого: в документ пишется ИИН/БИН другого человека, а подписываю я",
                  "As someone else: another person's IIN/BIN goes into the document, but I sign"),
    "bad_other_person": ("Кімнің ЖСН/БСН-і", "Чей ИИН/БИН", "Whose IIN/BIN"),
    "bad_auth": ("AUTH (аутентификация) кілтімен қол қою", "Подписать ключом AUTH (аутентификации)",
                 "Sign with the AUTH (authentication) key"),
    "bad_tamper": ("Қол қойғаннан кейін өрісті өзгерту", "Изменить поле после подписания",
                   "Change a field after signing"),
    # What was signed, and the answer
    "signed_title": ("Не қол қойылды", "Что подписано", "What was signed"),
    "signed_by": ("Қол қоюшының сертификаты", "Сертификат подписанта", "Signer's certificate"),
    "key_type": ("Кілт түрі", "Тип ключа", "Key type"),
    "key_sign": ("SIGN — қол қою кілті", "SIGN — ключ подписи", "SIGN — signing key"),
    "key_auth": ("AUTH — аутентификация кілті", "AUTH — ключ аутентификации", "AUTH — authentication key"),
    "cert_serial": ("Сертификаттың сериялық нөмірі", "Серийный номер сертификата", "Certificate serial"),
    "cert_issuer": ("Берген орталық", "Издатель", "Issuer"),
    "cert_valid": ("Жарамдылық мерзімі", "Срок действия", "Validity"),
    "tampered_note": ("Қол қойылғаннан кейін «{field}» өрісі өзгертілді: «{old}» → «{new}».",
                      "После подписания поле «{field}» изменено: «{old}» → «{new}».",
                      "After signing, the field “{field}” was changed: “{old}” → “{new}”."),
    "other_note": ("Құжатта басқа адамның ЖСН/БСН-і тұр: {who}.", "В документе ИИН/БИН другого человека: {who}.",
                   "The document carries another person's IIN/BIN: {who}."),
    "message_id": ("Хабарлама идентификаторы", "Идентификатор сообщения", "Message id"),
    "session_id": ("Сессия идентификаторы", "Идентификатор сессии", "Session id"),
    "submitted_now": ("Өтініш қол қойылып, ЭҮШ-ке жіберілді және қабылданды.",
                      "Заявление подписано, отправлено в ШЭП и принято.",
                      "The application was signed, sent to the gateway and accepted."),
    "refused_title": ("Шлюз өтінішті қабылдамады", "Шлюз отклонил заявление", "The gateway refused the application"),
    "error_code": ("Қате коды", "Код ошибки", "Error code"),
    "sub_indication": ("Қосымша көрсеткіш (ETSI)", "Подиндикация (ETSI)", "Sub-indication (ETSI)"),
    "technical_detail": ("Техникалық мәлімет", "Техническая подробность", "Technical detail"),
    "try_again": ("Өтінішке оралу", "Вернуться к заявлению", "Back to the application form"),
    "gateway_unreachable": ("Шлюзге қосылу мүмкін болмады. Кейінірек қайталаңыз.",
                            "Не удалось связаться со шлюзом. Повторите позже.",
                            "The gateway could not be reached. Try again later."),
    # Cabinet
    "my_applications": ("Өтініштерім", "Мои заявления", "My applications"),
    "col_service": ("Қызмет", "Услуга", "Service"),
    "col_submitted": ("Өтініш берілген күні", "Дата подачи", "Submitted on"),
    "col_status": ("Мәртебесі", "Статус", "Status"),
    "col_deadline": ("Орындау мерзімі", "Срок исполнения", "Deadline"),
    "overdue": ("МЕРЗІМІ ӨТКЕН", "ПРОСРОЧЕНО", "OVERDUE"),
    "archived": ("мұрағатта", "в архиве", "archived"),
    "no_applications": ("Әзірге өтініштер жоқ.", "Заявлений пока нет.", "No applications yet."),
    "live_hint": ("Мәртебелер бетті жаңартпай-ақ өзгереді.", "Статусы обновляются без перезагрузки страницы.",
                  "Statuses update without reloading the page."),
    "open": ("Ашу", "Открыть", "Open"),
    "new_application": ("Жаңа өтініш", "Новое заявление", "New application"),
    "total": ("Барлығы: {n}", "Всего: {n}", "Total: {n}"),
    "cabinet_error": ("Кабинетті жүктеу мүмкін болмады", "Не удалось загрузить кабинет",
                      "The cabinet could not be loaded"),
    "application": ("Өтініш", "Заявление", "Application"),
    "updated": ("Жаңартылды", "Обновлено", "Updated"),
    "applicant_name": ("Өтініш беруші", "Заявитель", "Applicant"),
    "timeline": ("Өтініш тарихы", "История заявления", "History of the application"),
    "applicant_signature": ("Өтініш берушінің қолтаңбасы (шлюз тексерді)", "Подпись заявителя (проверена шлюзом)",
                            "The applicant's signature (checked by the gateway)"),
    "receipt": ("ЭҮШ түбіртегі", "Квитанция ШЭП", "Gateway receipt"),
    "receipt_hint": ("Шлюз өтінішті алғанын растап, өз кілтімен қол қойған түбіртек.",
                     "Квитанция, которой шлюз подтверждает получение заявления, подписанная его ключом.",
                     "The gateway's signed acknowledgement that it received the application."),
    "request_digest": ("Сұраныс дайджесі (SHA-256)", "Дайджест запроса (SHA-256)", "Request digest (SHA-256)"),
    "received_at": ("Алынған уақыты", "Получено", "Received at"),
    "download_receipt": ("Түбіртекті жүктеу (XML)", "Скачать квитанцию (XML)", "Download the receipt (XML)"),
    "result": ("Нәтиже", "Результат", "Result"),
    "no_result_yet": ("Нәтиже әлі дайын емес.", "Результата пока нет.", "No result yet."),
    "download_result": ("Қол қойылған нәтижені жүктеу (XML)", "Скачать подписанный результат (XML)",
                        "Download the signed result (XML)"),
    "result_signature": ("Нәтиженің қолтаңбасы (портал тексерді)", "Подпись результата (проверена порталом)",
                         "The result's signature (checked by the portal)"),
    "signed_by_whom": ("Қол қойған", "Подписал", "Signed by"),
    "document": ("Өтініштің құжаты (шлюз тексергендей)", "Документ заявления (как его проверил шлюз)",
                 "The application document (as the gateway verified it)"),
    "show_xml": ("XML көрсету", "Показать XML", "Show the XML"),
    "error": ("Қате", "Ошибка", "Error"),
    "back_to_cabinet": ("Кабинетке оралу", "Вернуться в кабинет", "Back to the cabinet"),
}

_SERVICE_NAMES: dict[str, tuple[str, str, str]] = {
    f"svc_{service_id}": (names["kk"], names["ru"], names["en"]) for service_id, names in SERVICES.items()}
"One name per service, everywhere: the gateway's catalogue, which the cabinet API also answers with."

CATALOGUE: dict[str, tuple[str, str, str]] = {**_PAGES, **TERMS, **DEPOSIT_TERMS, **_SERVICE_NAMES}
"Every text of the portal: key -> (kk, ru, en)."

COUNTRIES: dict[str, tuple[str, str, str]] = {
    "FR": ("Франция", "Франция", "France"),
    "DE": ("Германия", "Германия", "Germany"),
    "IT": ("Италия", "Италия", "Italy"),
    "GB": ("Ұлыбритания", "Великобритания", "United Kingdom"),
    "US": ("АҚШ", "США", "United States"),
    "TR": ("Түркия", "Турция", "Türkiye"),
    "CN": ("Қытай", "Китай", "China"),
    "JP": ("Жапония", "Япония", "Japan"),
    "KR": ("Корея Республикасы", "Республика Корея", "Republic of Korea"),
    "RU": ("Ресей", "Россия", "Russia"),
    "UZ": ("Өзбекстан", "Узбекистан", "Uzbekistan"),
    "KG": ("Қырғызстан", "Кыргызстан", "Kyrgyzstan"),
}
"Destination countries offered in the export form (ISO 3166-1 alpha-2)."


def language(value: str | None) -> str | None:
    """``value`` if it names one of the portal's languages (``ru-KZ`` counts as ``ru``), else None."""
    if not value:
        return None
    primary = value.strip().lower().split("-")[0].split("_")[0]
    return primary if primary in LANGUAGES else None


def t(lang: str, key: str, **values: object) -> str:
    """The text for ``key`` in ``lang`` (kk, ru or en), with ``{name}`` placeholders filled in."""
    text = CATALOGUE[key][LANGUAGES.index(lang) if lang in LANGUAGES else 0]
    return text.format(**values) if values else text


def has(key: str) -> bool:
    """Whether the catalogue has ``key`` (for vocabularies that may meet a value it does not know)."""
    return key in CATALOGUE


def country(lang: str, code: str) -> str:
    """The country's name in ``lang``, or the code itself when it is not in the list."""
    names = COUNTRIES.get(code)
    return names[LANGUAGES.index(lang)] if names else code
