"""The software deposit's texts in Kazakh, Russian and English (merged into the portal's catalogue)."""

from __future__ import annotations

DEPOSIT_TERMS: dict[str, tuple[str, str, str]] = {
    "dep_intro": ("Мемлекеттік орган әзірленген бағдарламалық қамтылымды, бастапқы кодтарды және лицензиялық "
                  "бағдарламалық қамтылымның баптауларын операторға есепке алуға және сақтауға береді. Пакет "
                  "алдымен жүктеледі, өтінімде қабылдау-беру актісінің кестелері мен пакеттің SHA-256 болады.",
                  "Государственный орган передаёт оператору на учёт и хранение разработанное ПО, исходные коды и "
                  "настройки лицензионного ПО. Пакет загружается заранее, заявка содержит таблицы "
                  "акта приёма-передачи и SHA-256 пакета.",
                  "A state body deposits its software, source code and licensed-software settings with the "
                  "operator. The package is uploaded first; the application carries the acceptance-transfer "
                  "act's tables and the package's SHA-256."),
    "dep_roles_only": ("Өтінімге ұйымның бірінші басшысы немесе қол қою құқығы бар қызметкер ғана қол қояды.",
                       "Заявку подписывает только первый руководитель организации или сотрудник с правом подписи.",
                       "Only an organisation's first head or an employee with the right to sign may apply."),
    "dep_code": ("Ақпараттық жүйенің архитектуралық порталдағы коды", "Код ИС на архитектурном портале",
                 "The system's code on the architectural portal"),
    "dep_tables": ("Акт кестелері (deposit pack жасаған .tables.json)", "Таблицы акта (.tables.json от deposit pack)",
                   "The act's tables (.tables.json from deposit pack)"),
    "dep_package": ("Пакет (tar.gz)", "Пакет (tar.gz)", "The package (tar.gz)"),
    "dep_send": ("Жүктеу, қол қою және жіберу", "Загрузить, подписать и отправить", "Upload, sign and send"),
    "dep_msg_choose": ("Пакет пен кестелерді таңдаңыз.", "Выберите пакет и таблицы.",
                       "Choose the package and the tables."),
    "dep_msg_bad_tables": ("Кестелер файлы оқылмайды.", "Файл таблиц не читается.", "The tables file is unreadable."),
    "dep_msg_mismatch": ("Пакет кестелерде аталған пакет емес.", "Пакет не тот, что назван в таблицах.",
                         "The package is not the one the tables name."),
    "dep_msg_uploading": ("Пакет жүктелуде…", "Пакет загружается…", "Uploading the package…"),
    "dep_msg_signing": ("Өтінімге қол қойылып, жіберілуде…", "Заявка подписывается и отправляется…",
                        "Signing and sending the application…"),
    "dep_msg_refused": ("Бас тартылды:", "Отказано:", "Refused:"),
    # the operator's answer in the cabinet
    "dep_outcome": ("Нәтиже", "Итог", "Outcome"),
    "dep_accepted": ("Қабылданды: акт пен келісімге қол қойылды", "Принято: акт и соглашение подписаны",
                     "Accepted: the act and the agreement are signed"),
    "dep_refused": ("Дәлелді бас тарту", "Мотивированный отказ", "Reasoned refusal"),
    "dep_register_entry": ("Өтінімдер тізіліміндегі № (2-қосымша)", "№ в реестре заявок (приложение 2)",
                           "No. in the register of applications (appendix 2)"),
    "dep_repository": ("Репозиторий", "Репозиторий", "Repository"),
    "dep_act": ("Қабылдау-беру актісі (3-қосымша)", "Акт приёма-передачи (приложение 3)",
                "Acceptance-transfer act (appendix 3)"),
    "dep_agreement": ("Құпиялылық туралы келісім (4-қосымша)", "Соглашение о конфиденциальности (приложение 4)",
                      "Confidentiality agreement (appendix 4)"),
    "dep_notify_by": ("Уәкілетті органды хабардар ету мерзімі", "Срок уведомления уполномоченного органа",
                      "The authorised body is notified by"),
    "dep_table_files": ("1) Қолданбалы БҚ-ның бастапқы кодтары", "1) Исходные коды прикладного ПО",
                        "1) The application's source code"),
    "dep_table_libraries": ("2) Кітапханалар мен бағдарламалық платформалар", "2) Библиотеки и программные платформы",
                            "2) Libraries and platforms used"),
    "dep_col_no": ("р/с №", "№ п/п", "No."),
    "dep_col_label": ("Дискіні таңбалау", "Маркировка диска", "Disk label"),
    "dep_col_directory": ("Каталог", "Каталог", "Directory"),
    "dep_col_file": ("Файл", "Файл", "File"),
    "dep_col_name": ("Атауы", "Наименование", "Name"),
    "dep_col_mb": ("Мбайт", "Мбайт", "MB"),
    "dep_col_language": ("Бағдарламалау тілі", "Язык программирования", "Language"),
    "dep_col_changed": ("Түрлендірілген күні", "Дата изменения", "Changed"),
    "dep_col_version": ("Нұсқасы", "Версия", "Version"),
    "dep_ground": ("Негіз", "Основание", "Ground"),
    "dep_mismatches": ("Сәйкес келмейтін жолдар", "Несовпадающие строки", "Rows that differ"),
    "dep_col_field": ("Өріс", "Поле", "Field"),
    "dep_col_declared": ("Актіде", "В акте", "In the act"),
    "dep_col_actual": ("Жеткізгіште", "На носителе", "On the medium"),
}
