"""The gateway's stable error codes, with messages in Kazakh, Russian and English.

Codes are part of the public contract (SOAP ``ErrorInfo/errorCode``, REST ``code``): never rename one,
only add. The prefix says who failed, as in X-Road: ``CLIENT_`` (the caller sent something wrong),
``SIG_`` / ``ID_`` (the applicant's signature or identity was refused), ``PROVIDER_`` (the back-end),
``GATEWAY_`` (us). ``UPLOAD_`` codes are the caller's refusals of the package upload API (tus, docs/uploads.md).
``DEPOSIT_`` codes are the caller's refusals of a software deposit (docs/services.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

LANGUAGES = ("kk", "ru", "en")
DEFAULT_LANGUAGE = "en"


class Party(StrEnum):
    """Who is at fault: decides the HTTP status family and whether a retry can help."""

    CLIENT = "client"
    GATEWAY = "gateway"
    PROVIDER = "provider"


@dataclass(frozen=True)
class ErrorSpec:
    """One entry of the catalogue."""

    code: str
    "Stable identifier sent on the wire."
    http_status: int
    "Status for the REST channel (SOAP faults are always 500, as SOAP 1.1 requires)."
    party: Party
    "Who failed."
    messages: dict[str, str] = field(hash=False)
    "Human-readable text per language (kk, ru, en)."

    def message(self, language: str = DEFAULT_LANGUAGE) -> str:
        return self.messages.get(language) or self.messages[DEFAULT_LANGUAGE]


CATALOGUE: dict[str, ErrorSpec] = {}


def _add(code: str, status: int, party: Party, kk: str, ru: str, en: str) -> None:
    CATALOGUE[code] = ErrorSpec(code, status, party, {"kk": kk, "ru": ru, "en": en})


C, G, P = Party.CLIENT, Party.GATEWAY, Party.PROVIDER

# Intake
_add("CLIENT_BODY_TOO_LARGE", 413, C, "Сұраным тым үлкен.", "Запрос слишком большой.",
     "The request is too large.")
_add("CLIENT_MALFORMED_XML", 400, C, "XML құжаты дұрыс емес.", "Некорректный XML-документ.",
     "The XML document is malformed.")
_add("CLIENT_FORBIDDEN_XML", 400, C, "XML құжатында DTD немесе сыртқы сілтемелер рұқсат етілмейді.",
     "DTD и внешние сущности в XML запрещены.", "DTDs and external entities are not allowed in XML.")
_add("CLIENT_MALFORMED_JSON", 400, C, "JSON құжаты дұрыс емес.", "Некорректный JSON-документ.",
     "The JSON document is malformed.")
_add("CLIENT_UNSUPPORTED_MEDIA_TYPE", 415, C, "Мазмұн түріне қолдау көрсетілмейді.",
     "Тип содержимого не поддерживается.", "The content type is not supported.")
_add("CLIENT_NOT_SOAP", 400, C, "SOAP 1.1 конверті күтілген.", "Ожидался конверт SOAP 1.1.",
     "A SOAP 1.1 envelope was expected.")
_add("CLIENT_UNKNOWN_OPERATION", 400, C, "Белгісіз операция.", "Неизвестная операция.",
     "The operation is not known.")
_add("CLIENT_ENVELOPE_INVALID", 400, C, "Сұраным конверті схемаға сәйкес емес.",
     "Конверт запроса не соответствует схеме.", "The request envelope does not match the schema.")
_add("CLIENT_DOCUMENT_INVALID", 422, C, "Өтінім құжаты қызмет схемасына сәйкес емес.",
     "Документ заявления не соответствует схеме услуги.",
     "The application document does not match the service schema.")
_add("CLIENT_DOCUMENT_TOO_LARGE", 413, C, "Өтінім құжаты бұл қызмет қабылдайтын көлемнен үлкен.",
     "Документ заявления больше, чем принимает эта услуга.",
     "The application document is larger than this service accepts.")
_add("CLIENT_DOCUMENT_MISSING", 400, C, "requestData/data ішінде қол қойылған құжат жоқ.",
     "В requestData/data нет подписанного документа.", "No signed document in requestData/data.")
_add("CLIENT_STALE_MESSAGE", 400, C, "messageDate тым ескі немесе болашақта.",
     "messageDate слишком старая или в будущем.", "messageDate is too old or in the future.")
# Sender authentication and access (CLIENT_UNKNOWN_SENDER is no longer sent: an unknown id is CLIENT_BAD_CREDENTIALS)
_add("CLIENT_UNKNOWN_SENDER", 401, C, "Жіберуші тіркелмеген.", "Отправитель не зарегистрирован.",
     "The sender is not registered.")
_add("CLIENT_BAD_CREDENTIALS", 401, C, "Жіберушінің құпиясөзі қате.", "Неверный пароль отправителя.",
     "The sender's password is wrong.")
_add("CLIENT_ACCESS_DENIED", 403, C, "Жіберушіге бұл қызметке рұқсат жоқ.",
     "Отправителю не разрешён доступ к этой услуге.", "The sender may not call this service.")
_add("CLIENT_UNKNOWN_SERVICE", 404, C, "Мұндай қызмет жоқ.", "Такой услуги нет.",
     "No such service.")
_add("CLIENT_NOT_FOUND", 404, C, "Өтінім табылмады.", "Заявление не найдено.",
     "The application was not found.")
_add("CLIENT_DUPLICATE_IN_PROGRESS", 409, C, "Осы messageId бар өтінім әлі өңделуде.",
     "Заявление с этим messageId ещё обрабатывается.",
     "An application with this messageId is still being processed.")
_add("CLIENT_DUPLICATE_MISMATCH", 409, C, "Бұл messageId басқа құжат үшін қолданылған.",
     "Этот messageId уже использован для другого документа.",
     "This messageId was already used for a different document.")
# Signature (each maps from an ETSI EN 319 102-1 sub-indication)
_add("SIG_FORMAT_FAILURE", 422, C, "Қолтаңба пішімі дұрыс емес.", "Неверный формат подписи.",
     "The signature is not in an accepted form.")
_add("SIG_HASH_FAILURE", 422, C, "Қол қойылған құжат өзгертілген.", "Подписанный документ изменён.",
     "The signed document was changed after signing.")
_add("SIG_CRYPTO_FAILURE", 422, C, "Қолтаңба мәні тексерілмеді.", "Значение подписи не прошло проверку.",
     "The signature value does not verify.")
_add("SIG_CRYPTO_CONSTRAINTS_FAILURE", 422, C, "Қолтаңба алгоритміне рұқсат жоқ.",
     "Алгоритм подписи не разрешён.", "The signature algorithm is not allowed.")
_add("SIG_NO_SIGNING_CERTIFICATE_FOUND", 422, C, "Қол қоюшының сертификаты табылмады.",
     "Сертификат подписанта не найден.", "The signer's certificate was not found.")
_add("SIG_NO_CERTIFICATE_CHAIN_FOUND", 422, C, "Сертификат сенімді куәландырушы орталықпен берілмеген.",
     "Сертификат выдан не доверенным удостоверяющим центром.",
     "The certificate was not issued by a trusted certification authority.")
_add("SIG_EXPIRED", 422, C, "Сертификаттың мерзімі өткен.", "Срок действия сертификата истёк.",
     "The certificate has expired.")
_add("SIG_NOT_YET_VALID", 422, C, "Сертификат әлі жарамды емес.", "Сертификат ещё не действует.",
     "The certificate is not yet valid.")
_add("SIG_REVOKED", 422, C, "Сертификат кері қайтарылған.", "Сертификат отозван.",
     "The certificate has been revoked.")
_add("SIG_TRY_LATER", 503, G, "Сертификат мәртебесін тексеру мүмкін болмады, кейінірек қайталаңыз.",
     "Не удалось проверить статус сертификата, повторите позже.",
     "The certificate status could not be checked; try again later.")
_add("SIG_SIGNED_DATA_NOT_FOUND", 422, C, "Қолтаңба өтінім құжатын қамтымайды.",
     "Подпись не охватывает документ заявления.", "The signature does not cover the application document.")
_add("SIG_NOT_SIGNING_KEY", 422, C,
     "Құжатқа аутентификация кілтімен қол қойылған; қол қою (SIGN) кілті қажет.",
     "Документ подписан ключом аутентификации; нужен ключ подписи (SIGN).",
     "The document was signed with an authentication key; a signing (SIGN) key is required.")
_add("SIG_CHAIN_CONSTRAINTS_FAILURE", 422, C, "Сертификат саясат талаптарына сәйкес емес.",
     "Сертификат не соответствует требованиям политики.",
     "The certificate does not meet the policy's constraints.")
_add("SIG_CONSTRAINTS_FAILURE", 422, C, "Қолтаңба саясат талаптарына сәйкес емес.",
     "Подпись не соответствует требованиям политики.",
     "The signature does not meet the policy's constraints.")
_add("SIG_UNSUPPORTED_ALGORITHM", 422, C, "Бұл қолтаңба алгоритмін тексеру мүмкін емес.",
     "Этот алгоритм подписи не поддерживается.",
     "This signature algorithm is not supported by the verification backend.")
_add("SIG_GOST_UNAVAILABLE", 503, G,
     "ГОСТ қолтаңбасын тексеру бұл серверде қолжетімсіз (ГОСТ кітапханасы орнатылмаған).",
     "Проверка подписи ГОСТ на этом сервере недоступна (не установлена библиотека ГОСТ).",
     "GOST signatures cannot be verified on this server: the GOST library is not installed.")
_add("SIG_GOST_PATH_UNAVAILABLE", 503, G, "ГОСТ сертификаттар тізбегін тексеру бұл серверде әзірге қолжетімсіз.",
     "Проверка цепочки сертификатов ГОСТ на этом сервере пока недоступна.",
     "GOST certificate paths cannot be validated on this server yet.")
# Identity
_add("ID_IIN_INVALID", 422, C, "Өтінімдегі ЖСН дұрыс емес.", "ИИН в заявлении некорректен.",
     "The IIN in the application is not a valid IIN.")
_add("ID_IIN_MISMATCH", 403, C, "Өтінімдегі ЖСН қол қоюшының сертификатындағы ЖСН-ге сәйкес емес.",
     "ИИН в заявлении не совпадает с ИИН в сертификате подписанта.",
     "The IIN in the application is not the signer's IIN.")
_add("ID_CERTIFICATE_WITHOUT_IIN", 422, C, "Сертификатта ЖСН жоқ.", "В сертификате нет ИИН.",
     "The certificate carries no IIN.")
_add("ID_NOT_INDIVIDUAL_CERTIFICATE", 403, C, "Жеке өтінімге ұйым қызметкерінің сертификатымен қол қоюға болмайды.",
     "Личное заявление нельзя подписать сертификатом сотрудника организации.",
     "A personal application cannot be signed with an organisation employee's certificate.")
_add("ID_BIN_INVALID", 422, C, "Өтінімдегі БСН дұрыс емес.", "БИН в заявлении некорректен.",
     "The BIN in the application is not a valid BIN.")
_add("ID_BIN_MISMATCH", 403, C, "Өтінімдегі БСН қол қоюшының ұйымының БСН-іне сәйкес емес.",
     "БИН в заявлении не совпадает с БИН организации подписанта.",
     "The BIN in the application is not the signer's organisation's BIN.")
_add("ID_NOT_ORGANISATION_CERTIFICATE", 403, C, "Ұйымның өтініміне ұйым қызметкерінің сертификатымен қол қою керек.",
     "Заявление организации должно быть подписано сертификатом её сотрудника.",
     "An organisation's application must be signed with its employee's certificate.")
_add("ID_ROLE_MISSING", 403, C, "Қол қоюшыда ұйым атынан қол қою құқығы жоқ.",
     "У подписанта нет права подписи от имени организации.",
     "The signer has no right to sign for the organisation in this service.")
# Provider and gateway
_add("PROVIDER_UNAVAILABLE", 502, P, "Қызмет жеткізушісі қолжетімсіз.", "Поставщик услуги недоступен.",
     "The service provider is unavailable.")
_add("PROVIDER_TIMEOUT", 504, P, "Қызмет жеткізушісі уақытында жауап бермеді.",
     "Поставщик услуги не ответил вовремя.", "The service provider did not answer in time.")
_add("DEPOSIT_PACKAGE_MISSING", 422, C,
     "Өтінімде аталған пакет (SHA-256) осы жіберушіден толық жүктелмеген: алдымен пакетті жүктеңіз.",
     "Пакет, указанный в заявке (SHA-256), не загружен этим отправителем полностью: сначала загрузите пакет.",
     "The package the application names (by SHA-256) is not a complete upload of this sender: upload it first.")
_add("PROVIDER_REJECTED", 422, P, "Қызмет жеткізушісі өтінімді қабылдамады.",
     "Поставщик услуги отклонил заявление.", "The service provider rejected the application.")
_add("PROVIDER_BAD_RESPONSE", 502, P, "Қызмет жеткізушісінің жауабы дұрыс емес.",
     "Некорректный ответ поставщика услуги.", "The service provider's answer is not valid.")
_add("GATEWAY_STORAGE_UNAVAILABLE", 503, G, "Шлюз қоймасы қолжетімсіз, кейінірек қайталаңыз.",
     "Хранилище шлюза недоступно, повторите позже.", "The gateway's storage is unavailable; try again later.")
_add("GATEWAY_STORAGE_NOT_DURABLE", 503, G, "Шлюз қоймасы деректерді дискіге жаза алмай тұр, кейінірек қайталаңыз.",
     "Хранилище шлюза не может записать данные на диск, повторите позже.",
     "The gateway's storage cannot write to disk; try again later.")
_add("GATEWAY_STORAGE_NOT_REPLICATED", 503, G,
     "Шлюз қоймасы деректерді резервтік көшірмелерге уақытында жеткізе алмады, кейінірек қайталаңыз.",
     "Хранилище шлюза не успело передать данные на реплики, повторите позже.",
     "The gateway's storage could not copy the data to its replicas in time; try again later.")
_add("GATEWAY_OVERLOADED", 503, G, "Шлюз толы, кейінірек қайталаңыз.", "Шлюз перегружен, повторите позже.",
     "The gateway is at capacity; try again later.")
# The message log could not be sealed (signed and timestamped) for too long: nothing new is accepted unproven.
_add("GATEWAY_MESSAGELOG_UNSEALED", 503, G, "Шлюз хабарлар журналын мөрлей алмай тұр, кейінірек қайталаңыз.",
     "Шлюз не может заверить журнал сообщений, повторите позже.",
     "The gateway cannot seal its message log; try again later.")
_add("PROVIDER_SIGNATURE_INVALID", 502, P, "Қызмет жеткізушісінің жауабындағы қолтаңба расталмады.",
     "Подпись поставщика услуги в ответе не подтверждена.",
     "The service provider's signature on its answer did not verify.")
_add("CLIENT_JOB_NOT_FOUND", 404, C, "Мұндай тапсырма жоқ.", "Такого задания нет.", "No such job.")
_add("CLIENT_JOB_FINISHED", 409, C, "Тапсырма бұрын аяқталған.", "Задание уже завершено.",
     "The job was already finished.")
# Desks hold their jobs by lease; a provider's result must be bound to its application
_add("CLIENT_JOB_NOT_HELD", 409, C, "Бұл тапсырма сізде емес: оның мерзімі өтті немесе ол басқа орындаушыға берілді.",
     "Это задание не за вами: срок его аренды истёк или оно передано другому исполнителю.",
     "This job is not held by you: its lease expired or another worker took it.")
_add("PROVIDER_RESULT_MISMATCH", 502, P, "Қызмет жеткізушісінің жауабы бұл өтінімге қатысты емес.",
     "Ответ поставщика услуги не относится к этому заявлению.",
     "The service provider's answer does not refer to this application.")
_add("PROVIDER_SIGNATURE_UNCHECKED", 503, P,
     "Қызмет жеткізушісі қолтаңбасының кері қайтарылу күйін қазір тексеру мүмкін емес, кейінірек қайталаңыз.",
     "Статус отзыва подписи поставщика услуги сейчас проверить нельзя, повторите позже.",
     "The revocation status of the service provider's signature cannot be checked now; try again later.")
_add("CLIENT_OWNER_INVALID", 400, C, "Сұраным жолында 12 цифрлы ЖСН немесе БСН болуы керек.",
     "В пути запроса должен быть ИИН или БИН из 12 цифр.",
     "The request path must hold a 12-digit IIN or BIN.")
# Sender throttling and quotas (429 with Retry-After)
_add("CLIENT_TOO_MANY_ATTEMPTS", 429, C, "Сәтсіз кіру әрекеттері тым көп, кейінірек қайталаңыз.",
     "Слишком много неудачных попыток входа, повторите позже.",
     "Too many failed sign-in attempts; try again later.")
_add("CLIENT_LOCKED_OUT", 429, C, "Сәтсіз әрекеттер көп болғандықтан кіру уақытша бұғатталды.",
     "Вход временно заблокирован из-за множества неудачных попыток.",
     "Sign-in is temporarily locked after repeated failed attempts.")
_add("CLIENT_QUOTA_EXCEEDED", 429, C, "Жіберушінің осы қызметке сұраным квотасы таусылды.",
     "Квота запросов отправителя к этой услуге исчерпана.",
     "The sender's request quota for this service is used up.")
_add("GATEWAY_INTERNAL", 500, G, "Шлюздің ішкі қатесі.", "Внутренняя ошибка шлюза.",
     "Internal gateway error.")
# Cabinet live event streams (refused with Retry-After)
_add("CLIENT_TOO_MANY_STREAMS", 429, C,
     "Бұл ЖСН/БСН үшін тым көп тікелей оқиғалар ағыны ашық; біреуін жабыңыз немесе кейінірек қайталаңыз.",
     "Для этого ИИН/БИН открыто слишком много потоков событий; закройте один или повторите позже.",
     "Too many live event streams are open for this IIN/BIN; close one or try again later.")
_add("GATEWAY_STREAMS_FULL", 503, G, "Шлюз қазір тағы бір оқиғалар ағынын аша алмайды, кейінірек қайталаңыз.",
     "Шлюз сейчас не может открыть ещё один поток событий, повторите позже.",
     "The gateway cannot open another live event stream now; try again later.")

# WS-Security (SOAP senders that authenticate with a system certificate; see docs/ws-security.md)
_add("CLIENT_MUST_UNDERSTAND", 400, C, "Шлюз mustUnderstand деп белгіленген SOAP тақырыбын өңдемейді.",
     "Шлюз не обрабатывает заголовок SOAP, помеченный mustUnderstand.",
     "The gateway does not process a SOAP header marked mustUnderstand.")
_add("CLIENT_WSS_REQUIRED", 401, C, "Бұл жіберуші сұранымға WS-Security арқылы қол қоюы тиіс.",
     "Этот отправитель должен подписывать запрос по WS-Security.",
     "This sender must sign the request with WS-Security.")
_add("CLIENT_WSS_INVALID", 401, C, "WS-Security тақырыбы немесе оның сілтемелері қабылданбайды.",
     "Заголовок WS-Security или его ссылки не принимаются.",
     "The WS-Security header or its references are not acceptable.")
_add("CLIENT_WSS_TIMESTAMP_EXPIRED", 401, C, "WS-Security уақыт белгісінің мерзімі өтті.",
     "Срок метки времени WS-Security истёк.", "The WS-Security Timestamp has expired.")
_add("CLIENT_WSS_TIMESTAMP_INVALID", 401, C,
     "WS-Security уақыт белгісі болашақта жасалған немесе тым ұзақ жарамды.",
     "Метка времени WS-Security создана в будущем или действует слишком долго.",
     "The WS-Security Timestamp was created in the future or lives too long.")
_add("CLIENT_WSS_REPLAY", 401, C, "Бұл WS-Security қолтаңбасы бұрын қолданылған.",
     "Эта подпись WS-Security уже использовалась.", "This WS-Security signature was already used.")
_add("CLIENT_WSS_BIN_MISMATCH", 403, C, "WS-Security сертификатының БСН жіберушінің БСН-іне сәйкес емес.",
     "БИН сертификата WS-Security не совпадает с БИН отправителя.",
     "The BIN of the WS-Security certificate is not the sender's BIN.")
_add("CLIENT_WSS_NOT_SYSTEM_CERTIFICATE", 403, C, "WS-Security үшін ұйымның жүйелік сертификаты қажет.",
     "Для WS-Security нужен системный сертификат организации.",
     "WS-Security needs a system certificate of an organisation.")

# Package uploads over tus (see docs/uploads.md)
_add("UPLOAD_DIGEST_MISMATCH", 422, C, "Пакеттің SHA-256 дайджесті жарияланғанға сәйкес емес; жүктеу жойылды.",
     "SHA-256 пакета не совпадает с заявленным; загрузка удалена.",
     "The package's SHA-256 does not match the declared one; the upload was discarded.")
_add("UPLOAD_OFFSET_MISMATCH", 409, C, "Upload-Offset серверде сақталған ығысуға сәйкес емес.",
     "Upload-Offset не совпадает со смещением на сервере.", "Upload-Offset does not match the server's offset.")
_add("UPLOAD_TOO_LARGE", 413, C, "Пакет рұқсат етілген өлшемнен үлкен.", "Пакет больше допустимого размера.",
     "The package is larger than allowed.")
_add("UPLOAD_NOT_FOUND", 404, C, "Жүктеу табылмады.", "Загрузка не найдена.", "The upload was not found.")
_add("UPLOAD_TUS_VERSION", 412, C, "Tus-Resumable: 1.0.0 тақырыбы қажет.", "Требуется заголовок Tus-Resumable: 1.0.0.",
     "The Tus-Resumable: 1.0.0 header is required.")
_add("UPLOAD_HEADERS_INVALID", 400, C, "Жүктеу тақырыптары дұрыс емес.", "Некорректные заголовки загрузки.",
     "The upload headers are invalid.")
_add("UPLOAD_LOCKED", 423, C, "Бұл жүктеуге басқа сұраным жазып жатыр.", "В эту загрузку пишет другой запрос.",
     "Another request is writing to this upload.")

del C, G, P

RETRYABLE = frozenset({
    "GATEWAY_OVERLOADED", "GATEWAY_STORAGE_UNAVAILABLE", "GATEWAY_STORAGE_NOT_REPLICATED", "GATEWAY_STREAMS_FULL",
    "PROVIDER_UNAVAILABLE", "PROVIDER_TIMEOUT", "PROVIDER_SIGNATURE_UNCHECKED", "SIG_TRY_LATER",
    "CLIENT_DUPLICATE_IN_PROGRESS", "CLIENT_TOO_MANY_ATTEMPTS", "CLIENT_LOCKED_OUT", "CLIENT_QUOTA_EXCEEDED",
    "CLIENT_TOO_MANY_STREAMS", "UPLOAD_LOCKED",
})
"""Refusals after which the same request may be sent again and succeed: each carries Retry-After on both
channels, and none is stored as an application's final state."""
DEFAULT_RETRY_AFTER = 5
"Seconds a retryable refusal asks the caller to wait when the refusing code path names no better time."


class GatewayError(Exception):
    """A refusal with a stable code. Raised anywhere in the pipeline; intake turns it into a fault.

    ``detail`` is extra English text for the caller (never personal data); ``sub_indication`` and
    ``report`` carry the ETSI sub-indication and the validation report when a signature was refused;
    ``retry_after`` (seconds) is sent as Retry-After where the caller may try again later.
    """

    def __init__(
        self,
        code: str,
        detail: str | None = None,
        *,
        sub_indication: str | None = None,
        report: dict[str, Any] | None = None,
        retry_after: int | None = None,
    ) -> None:
        if code not in CATALOGUE:
            raise ValueError(f"unknown error code {code!r}")
        self.spec = CATALOGUE[code]
        self.code = code
        self.detail = detail
        self.sub_indication = sub_indication
        self.report = report
        self.retry_after = retry_after
        super().__init__(f"{code}: {detail or self.spec.message()}")

    def message(self, language: str = DEFAULT_LANGUAGE) -> str:
        return self.spec.message(language)

    def retry_after_seconds(self) -> int | None:
        """What Retry-After says: the refusal's own time, the default for a retryable code, else None."""
        if self.retry_after is not None:
            return max(1, self.retry_after)
        return DEFAULT_RETRY_AFTER if self.code in RETRYABLE else None


def pick_language(accept_language: str | None, explicit: str | None = None) -> str:
    """Choose kk/ru/en from a ``lang`` parameter or an ``Accept-Language`` header (RFC 9110 q-values).

    Only the primary subtag counts (``ru-KZ`` is ``ru``); ``q=0`` means "not acceptable".
    """
    if explicit and _primary(explicit) in LANGUAGES:
        return _primary(explicit)
    if not accept_language:
        return DEFAULT_LANGUAGE
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if quality > 0:
            ranked.append((-quality, position, _primary(tag)))
    for _, _, tag in sorted(ranked):
        if tag in LANGUAGES:
            return tag
    return DEFAULT_LANGUAGE


def _primary(tag: str) -> str:
    return tag.strip().split("-")[0].lower()


def markdown_table() -> str:
    """The README's error-code table, generated from the catalogue (``python -m gateway.errors``)."""
    from signing.verifier import ERROR_CODES, REFINED_CODES

    subs: dict[str, list[str]] = {}
    for sub, code in [*ERROR_CODES.items(), *((s, c) for c, s in REFINED_CODES.items())]:
        subs.setdefault(code, []).append(str(sub))
    lines = ["| code | HTTP (REST) | who | sub-indication | message (en) |", "|---|---|---|---|---|"]
    for code, spec in CATALOGUE.items():
        named = ", ".join(subs.get(code, [])) or "—"
        lines.append(f"| `{code}` | {spec.http_status} | {spec.party} | {named} | {spec.messages['en']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())


def storage_refusal(exc: BaseException, detail: str | None = None) -> GatewayError:
    """The refusal for a storage error: GATEWAY_STORAGE_NOT_DURABLE when Redis refused a write because it cannot
    persist it (its ``MISCONF`` reply: the append-only file's last write failed), else GATEWAY_STORAGE_UNAVAILABLE."""
    if "MISCONF " in str(exc):  # also inside a script's error: "Error running script ... -MISCONF Errors writing"
        return GatewayError("GATEWAY_STORAGE_NOT_DURABLE", detail)
    return GatewayError("GATEWAY_STORAGE_UNAVAILABLE", detail)
