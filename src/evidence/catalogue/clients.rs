//! What the clients people call the trigger API with print when the call fails, with the client
//! and where its wording is documented. These say a request failed and how; they point at a
//! failed trigger only when the request was a trigger call or the text is about one.

use super::{Meaning, Row, Says};
use crate::cause::CauseId;

rows! { Client;
    // curl (libcurl error texts: curl.se/libcurl/c/libcurl-errors.html; `curl --fail` prints
    // "The requested URL returned error: N").
    "curl.dns", "could not resolve host", "curl: CURLE_COULDNT_RESOLVE_HOST (6)", CallFailed, Meaning::Causes, [NetworkDns];
    "curl.proxy_dns", "could not resolve proxy", "curl: CURLE_COULDNT_RESOLVE_PROXY (5)", CallFailed, Meaning::Causes, [NetworkProxy];
    "curl.connect", "failed to connect to", "curl: CURLE_COULDNT_CONNECT (7)", CallFailed, Meaning::Causes, [NetworkConnect];
    "curl.connect.short", "couldn't connect to server", "curl: CURLE_COULDNT_CONNECT (7)", CallFailed, Meaning::Causes, [NetworkConnect];
    "curl.timeout", "operation timed out after", "curl: CURLE_OPERATION_TIMEDOUT (28)", CallFailed, Meaning::Causes, [NetworkTimeout];
    "curl.timeout.reached", "timeout was reached", "curl: CURLE_OPERATION_TIMEDOUT (28)", CallFailed, Meaning::Causes, [NetworkTimeout];
    "curl.tls.certificate", "ssl certificate problem", "curl: CURLE_PEER_FAILED_VERIFICATION (60)", CallFailed, Meaning::Causes, [NetworkTls];
    "curl.tls.issuer", "unable to get local issuer certificate", "curl: CURLE_PEER_FAILED_VERIFICATION (60)", CallFailed, Meaning::Causes, [NetworkTls];
    "curl.tls.name", "no alternative certificate subject name matches", "curl: CURLE_PEER_FAILED_VERIFICATION (60)", CallFailed, Meaning::Causes, [NetworkTls];
    "curl.tls.handshake", "ssl connect error", "curl: CURLE_SSL_CONNECT_ERROR (35)", CallFailed, Meaning::Causes, [NetworkTls];
    "curl.tls.wrong_version", "wrong version number", "curl: CURLE_SSL_CONNECT_ERROR (35)", CallFailed, Meaning::Causes, [ApiUrlScheme, NetworkTls];
    "curl.empty_reply", "empty reply from server", "curl: CURLE_GOT_NOTHING (52)", CallFailed, Meaning::Causes, [NetworkConnect, InstanceUnavailable];
    "curl.proxy_connect", "from proxy after connect", "curl: CURLE_RECV_ERROR (56)", CallFailed, Meaning::Causes, [NetworkProxy];
    "curl.proxy_tunnel", "connect tunnel failed", "curl: CURLE_COULDNT_CONNECT (7), HTTP proxy", CallFailed, Meaning::Causes, [NetworkProxy];
    "curl.http_error", "the requested url returned error", "curl: CURLE_HTTP_RETURNED_ERROR (22), --fail", CallFailed, Meaning::Causes, [];
    "curl.bad_url", "url using bad/illegal format", "curl: CURLE_URL_MALFORMAT (3)", CallFailed, Meaning::Causes, [ApiUrlHost, VariableUndefined];
    "curl.no_url", "no url specified", "curl: CURLE_URL_MALFORMAT (3)", CallFailed, Meaning::Causes, [VariableUndefined];
    "curl.no_host", "no host part in the url", "curl: CURLE_URL_MALFORMAT (3), 'URL rejected: No host part in the URL'", CallFailed, Meaning::Causes, [VariableUndefined, ApiUrlHost];
    "curl.protocol", "not supported or disabled in libcurl", "curl: CURLE_UNSUPPORTED_PROTOCOL (1)", CallFailed, Meaning::Causes, [ApiUrlScheme, VariableUndefined];
    "curl.dns_timeout", "resolving timed out after", "curl: CURLE_OPERATION_TIMEDOUT (28) while resolving", CallFailed, Meaning::Causes, [NetworkDns, NetworkTimeout];
    "curl.tls.subject", "does not match target host name", "curl: CURLE_PEER_FAILED_VERIFICATION (60), certificate subject name", CallFailed, Meaning::Causes, [NetworkTls, ApiUrlHost];
    "curl.tls.expired", "certificate has expired", "curl / OpenSSL: X509_V_ERR_CERT_HAS_EXPIRED", CallFailed, Meaning::Causes, [NetworkTls];

    // Operating-system texts many clients pass on (glibc, Windows, BSD).
    "os.dns.unknown_name", "name or service not known", "glibc: getaddrinfo EAI_NONAME", CallFailed, Meaning::Causes, [NetworkDns];
    "os.dns.temporary", "temporary failure in name resolution", "glibc: getaddrinfo EAI_AGAIN", CallFailed, Meaning::Causes, [NetworkDns];
    "os.dns.bsd", "nodename nor servname provided", "BSD libc: getaddrinfo EAI_NONAME", CallFailed, Meaning::Causes, [NetworkDns];
    "os.connect.refused", "connection refused", "POSIX: ECONNREFUSED", CallFailed, Meaning::Causes, [NetworkConnect];
    "os.connect.no_route", "no route to host", "POSIX: EHOSTUNREACH", CallFailed, Meaning::Causes, [NetworkConnect];
    "os.connect.unreachable", "network is unreachable", "POSIX: ENETUNREACH", CallFailed, Meaning::Causes, [NetworkConnect];
    "os.connect.reset", "connection reset by peer", "POSIX: ECONNRESET", CallFailed, Meaning::Causes, [NetworkConnect, NetworkProxy];
    "os.timeout", "connection timed out", "POSIX: ETIMEDOUT", CallFailed, Meaning::Causes, [NetworkTimeout];

    // wget (GNU wget and BusyBox wget).
    "wget.dns", "unable to resolve host address", "GNU wget: host.c", CallFailed, Meaning::Causes, [NetworkDns];
    "wget.dns.busybox", "bad address", "BusyBox wget: xconnect.c", CallFailed, Meaning::Causes, [NetworkDns];
    "wget.tls", "cannot verify", "GNU wget: openssl.c, 'cannot verify <host>'s certificate'", CallFailed, Meaning::Causes, [NetworkTls];
    "wget.tls.connect", "unable to establish ssl connection", "GNU wget: openssl.c", CallFailed, Meaning::Causes, [NetworkTls];
    "wget.connect.busybox", "can't connect to remote host", "BusyBox wget: xconnect.c", CallFailed, Meaning::Causes, [NetworkConnect];
    "wget.timeout.busybox", "download timed out", "BusyBox wget: wget.c", CallFailed, Meaning::Causes, [NetworkTimeout];
    "wget.http_error", "server returned error: http/", "BusyBox wget: 'server returned error: HTTP/1.1 N'", CallFailed, Meaning::Causes, [];

    // PowerShell Invoke-RestMethod / Invoke-WebRequest (.NET WebException and HttpClient texts).
    "pwsh.dns", "the remote name could not be resolved", "PowerShell 5.1: System.Net.WebException NameResolutionFailure", CallFailed, Meaning::Causes, [NetworkDns];
    "pwsh.dns.core", "no such host is known", "PowerShell 7 / .NET: SocketException HostNotFound", CallFailed, Meaning::Causes, [NetworkDns];
    "pwsh.connect", "unable to connect to the remote server", "PowerShell 5.1: System.Net.WebException ConnectFailure", CallFailed, Meaning::Causes, [NetworkConnect];
    "pwsh.timeout", "the operation has timed out", "PowerShell 5.1: System.Net.WebException Timeout", CallFailed, Meaning::Causes, [NetworkTimeout];
    "pwsh.tls", "could not establish trust relationship", "PowerShell 5.1: System.Net.WebException TrustFailure", CallFailed, Meaning::Causes, [NetworkTls];
    "pwsh.tls.channel", "could not create ssl/tls secure channel", "PowerShell 5.1: System.Net.WebException SecureChannelFailure", CallFailed, Meaning::Causes, [NetworkTls];
    "pwsh.tls.core", "the ssl connection could not be established", ".NET HttpClient: HttpRequestException", CallFailed, Meaning::Causes, [NetworkTls];
    "pwsh.connect.refused", "target machine actively refused it", ".NET: SocketException ConnectionRefused", CallFailed, Meaning::Causes, [NetworkConnect];
    "pwsh.timeout.core", "httpclient.timeout", ".NET HttpClient: TaskCanceledException on timeout", CallFailed, Meaning::Causes, [NetworkTimeout];
    "pwsh.http_error", "the remote server returned an error", "PowerShell 5.1: System.Net.WebException ProtocolError", CallFailed, Meaning::Causes, [];
    "pwsh.http_error.core", "response status code does not indicate success", "PowerShell 7 / .NET HttpClient: HttpRequestException", CallFailed, Meaning::Causes, [];

    // Python: requests / urllib3, and python-gitlab's exceptions.
    "python.dns", "nameresolutionerror", "urllib3: NameResolutionError", CallFailed, Meaning::Causes, [NetworkDns];
    "python.dns.failed", "failed to resolve", "urllib3: NameResolutionError", CallFailed, Meaning::Causes, [NetworkDns];
    "python.connect", "newconnectionerror", "urllib3: NewConnectionError", CallFailed, Meaning::Causes, [NetworkConnect];
    "python.timeout", "connecttimeouterror", "urllib3: ConnectTimeoutError", CallFailed, Meaning::Causes, [NetworkTimeout];
    "python.timeout.read", "read timed out", "urllib3: ReadTimeoutError", CallFailed, Meaning::Causes, [NetworkTimeout];
    "python.tls", "certificate_verify_failed", "Python ssl: SSLCertVerificationError", CallFailed, Meaning::Causes, [NetworkTls];
    "python.proxy", "proxyerror", "requests: ProxyError", CallFailed, Meaning::Causes, [NetworkProxy];
    "python.no_scheme", "no scheme supplied", "requests: MissingSchema", CallFailed, Meaning::Causes, [VariableUndefined, ApiUrlScheme];
    "python.bad_scheme", "no connection adapters were found", "requests: InvalidSchema", CallFailed, Meaning::Causes, [ApiUrlScheme];
    "python.http_error", "client error: ", "requests: HTTPError ('404 Client Error: Not Found for url')", CallFailed, Meaning::Causes, [];
    "python.server_error", "server error: ", "requests: HTTPError ('500 Server Error: … for url')", CallFailed, Meaning::Causes, [InstanceUnavailable];
    "python_gitlab.auth", "gitlabauthenticationerror", "python-gitlab: gitlab.exceptions.GitlabAuthenticationError", CallFailed, Meaning::Causes, [TokenInvalid, TokenExpired];
    "python_gitlab.redirect", "detected a 301", "python-gitlab: RedirectError on a 301 to https", CallFailed, Meaning::Causes, [ApiUrlScheme];
    "python_gitlab.create", "gitlabcreateerror", "python-gitlab: gitlab.exceptions.GitlabCreateError", CallFailed, Meaning::Causes, [];

    // Node.js (fetch / undici, axios, got): system error codes and OpenSSL verification codes.
    "node.dns", "enotfound", "Node.js: getaddrinfo ENOTFOUND", CallFailed, Meaning::Causes, [NetworkDns];
    "node.dns.again", "eai_again", "Node.js: getaddrinfo EAI_AGAIN", CallFailed, Meaning::Causes, [NetworkDns];
    "node.connect", "econnrefused", "Node.js: ECONNREFUSED", CallFailed, Meaning::Causes, [NetworkConnect];
    "node.reset", "econnreset", "Node.js: ECONNRESET", CallFailed, Meaning::Causes, [NetworkConnect, NetworkProxy];
    "node.timeout", "etimedout", "Node.js: ETIMEDOUT", CallFailed, Meaning::Causes, [NetworkTimeout];
    "node.tls.leaf", "unable_to_verify_leaf_signature", "Node.js: UNABLE_TO_VERIFY_LEAF_SIGNATURE", CallFailed, Meaning::Causes, [NetworkTls];
    "node.tls.first", "unable to verify the first certificate", "Node.js: UNABLE_TO_VERIFY_LEAF_SIGNATURE", CallFailed, Meaning::Causes, [NetworkTls];
    "node.tls.chain", "self_signed_cert_in_chain", "Node.js: SELF_SIGNED_CERT_IN_CHAIN", CallFailed, Meaning::Causes, [NetworkTls];
    "node.tls.self_signed", "self-signed certificate", "Node.js / OpenSSL: 'self-signed certificate in certificate chain'", CallFailed, Meaning::Causes, [NetworkTls];
    "node.tls.self_signed.old", "self signed certificate", "Node.js < 17 / OpenSSL 1.1: 'self signed certificate'", CallFailed, Meaning::Causes, [NetworkTls];
    "node.tls.expired", "cert_has_expired", "Node.js: CERT_HAS_EXPIRED", CallFailed, Meaning::Causes, [NetworkTls];
    "node.hang_up", "socket hang up", "Node.js: ECONNRESET 'socket hang up'", CallFailed, Meaning::Causes, [NetworkConnect, NetworkProxy];
    "node.tls.altnames", "does not match certificate's altnames", "Node.js: ERR_TLS_CERT_ALTNAME_INVALID", CallFailed, Meaning::Causes, [NetworkTls, ApiUrlHost];
    "node.timeout.undici", "connect timeout error", "undici: ConnectTimeoutError", CallFailed, Meaning::Causes, [NetworkTimeout];
    "node.fetch_failed", "fetch failed", "Node.js fetch (undici): TypeError: fetch failed", CallFailed, Meaning::Causes, [NetworkConnect];
    "node.axios_status", "request failed with status code", "axios: AxiosError", CallFailed, Meaning::Causes, [];

    // Go net/http (glab, go-gitlab, Terraform): resolver, dialer, TLS.
    "go.dns", "no such host", "Go net: DNSError 'no such host'", CallFailed, Meaning::Causes, [NetworkDns];
    "go.dns.misbehaving", "server misbehaving", "Go net: DNSError 'server misbehaving'", CallFailed, Meaning::Causes, [NetworkDns];
    "go.timeout", "i/o timeout", "Go net: OpError 'i/o timeout'", CallFailed, Meaning::Causes, [NetworkTimeout];
    "go.timeout.client", "client.timeout exceeded", "Go net/http: 'Client.Timeout exceeded while awaiting headers'", CallFailed, Meaning::Causes, [NetworkTimeout];
    "go.timeout.deadline", "context deadline exceeded", "Go context: DeadlineExceeded", CallFailed, Meaning::Causes, [NetworkTimeout];
    "go.tls.authority", "certificate signed by unknown authority", "Go crypto/x509: UnknownAuthorityError", CallFailed, Meaning::Causes, [NetworkTls];
    "go.tls.verify", "tls: failed to verify certificate", "Go crypto/tls (1.20+)", CallFailed, Meaning::Causes, [NetworkTls];
    "go.tls.name", "x509: certificate is valid for", "Go crypto/x509: HostnameError", CallFailed, Meaning::Causes, [NetworkTls];
    "go.tls.handshake", "tls handshake timeout", "Go net/http: 'net/http: TLS handshake timeout'", CallFailed, Meaning::Causes, [NetworkTimeout, NetworkTls, NetworkProxy];
    "go.scheme", "unsupported protocol scheme", "Go net/http: 'unsupported protocol scheme'", CallFailed, Meaning::Causes, [VariableUndefined, ApiUrlScheme];
    "go.no_host", "no host in request url", "Go net/http: 'http: no Host in request URL'", CallFailed, Meaning::Causes, [VariableUndefined, ApiUrlHost];
    "go.unknown_error", "failed to parse unknown error format", "go-gitlab: ErrorResponse for a body that is not GitLab's", CallFailed, Meaning::Causes, [ApiUrlPath, ApiUrlHost];
    "go.proxy", "proxyconnect tcp", "Go net/http: proxy dial error", CallFailed, Meaning::Causes, [NetworkProxy];
    "go.http_gitlab", "{message: 404", "go-gitlab: ErrorResponse 'POST <url>: 404 {message: 404 …}'", CallFailed, Meaning::Causes, [];

    // Ruby (gitlab gem, Net::HTTP) and Java.
    "ruby.connect", "failed to open tcp connection", "Ruby Net::HTTP: 'Failed to open TCP connection to host:port'", CallFailed, Meaning::Causes, [NetworkConnect];
    "ruby.timeout", "net::opentimeout", "Ruby Net::HTTP: Net::OpenTimeout", CallFailed, Meaning::Causes, [NetworkTimeout];
    "ruby.tls", "certificate verify failed", "Ruby OpenSSL: SSL_connect … certificate verify failed", CallFailed, Meaning::Causes, [NetworkTls];
    "ruby_gitlab.response", "server responded with code", "gitlab gem: Gitlab::Error::ResponseError", CallFailed, Meaning::Causes, [];
    "java.dns", "unknownhostexception", "Java: java.net.UnknownHostException", CallFailed, Meaning::Causes, [NetworkDns];
    "java.timeout", "sockettimeoutexception", "Java: java.net.SocketTimeoutException", CallFailed, Meaning::Causes, [NetworkTimeout];
    "java.tls", "pkix path building failed", "Java: sun.security.validator.ValidatorException", CallFailed, Meaning::Causes, [NetworkTls];
}
