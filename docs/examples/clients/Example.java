// passerelle's JSON door from Java 17 with the JDK alone (java.net.http and
// javax.net.ssl): eligibility, a claim, and a modified resend whose error
// details name the reason. Run it as one file:
//
//   PASSERELLE_URL=https://localhost:50051 PASSERELLE_CERTS=.passerelle/certs java Example.java
//
// A real project would parse JSON with Jackson or Gson and keep the client
// certificate in a PKCS#12 keystore; this example reads the PEM files that
// `passerelle certs` writes and picks fields with a small pattern so that it
// needs nothing beyond the JDK.

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyFactory;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.spec.PKCS8EncodedKeySpec;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;

public class Example {
    static final String URL = env("PASSERELLE_URL", "https://localhost:50051");
    static final Path CERTS = Path.of(env("PASSERELLE_CERTS", ".passerelle/certs"));

    static String env(String name, String fallback) {
        String v = System.getenv(name);
        return v == null || v.isEmpty() ? fallback : v;
    }

    /** Mutual TLS: the broker's CA, and the scheme's certificate as its identity. */
    static SSLContext tls() throws Exception {
        CertificateFactory x509 = CertificateFactory.getInstance("X.509");
        Certificate ca;
        try (var in = Files.newInputStream(CERTS.resolve("ca.crt"))) {
            ca = x509.generateCertificate(in);
        }
        Certificate[] chain;
        try (var in = Files.newInputStream(CERTS.resolve("scheme-CNSS.crt"))) {
            chain = x509.generateCertificates(in).toArray(new Certificate[0]);
        }
        // The key is PKCS#8 PEM (ECDSA P-256).
        String pem = Files.readString(CERTS.resolve("scheme-CNSS.key"));
        byte[] der = Base64.getMimeDecoder().decode(pem.replaceAll("-----[A-Z ]+-----", ""));
        PrivateKey key = KeyFactory.getInstance("EC").generatePrivate(new PKCS8EncodedKeySpec(der));

        char[] secret = "in-memory".toCharArray();
        KeyStore identity = KeyStore.getInstance("PKCS12");
        identity.load(null, null);
        identity.setKeyEntry("scheme-CNSS", key, secret, chain);
        KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        kmf.init(identity, secret);

        KeyStore trust = KeyStore.getInstance("PKCS12");
        trust.load(null, null);
        trust.setCertificateEntry("passerelle-ca", ca);
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trust);

        SSLContext ctx = SSLContext.getInstance("TLSv1.3");
        ctx.init(kmf.getKeyManagers(), tmf.getTrustManagers(), null);
        return ctx;
    }

    static HttpClient client;

    /** POST /<package>.<Service>/<Method> with a JSON body: [status, body]. */
    static String[] call(String method, String json) throws Exception {
        HttpRequest req = HttpRequest.newBuilder(URI.create(URL + "/passerelle.scheme.v1.SchemeService/" + method))
            .header("Content-Type", "application/json")
            .timeout(Duration.ofSeconds(30))
            .POST(HttpRequest.BodyPublishers.ofString(json))
            .build();
        HttpResponse<String> r = client.send(req, HttpResponse.BodyHandlers.ofString());
        return new String[] {String.valueOf(r.statusCode()), r.body()};
    }

    /** Every value of a field in a JSON text (strings unquoted). */
    static List<String> all(String json, String field) {
        Matcher m = Pattern.compile("\"" + field + "\"\\s*:\\s*(?:\"([^\"]*)\"|([^,}\\]]+))").matcher(json);
        List<String> out = new ArrayList<>();
        while (m.find()) {
            out.add(m.group(1) != null ? m.group(1) : m.group(2).trim());
        }
        return out;
    }

    static String first(String json, String field) {
        List<String> v = all(json, field);
        return v.isEmpty() ? "" : v.get(0);
    }

    public static void main(String[] args) throws Exception {
        client = HttpClient.newBuilder().sslContext(tls()).connectTimeout(Duration.ofSeconds(10)).build();

        String[] e = call("CheckEligibility",
            "{\"schemeId\": \"CNSS\", \"beneficiaryId\": \"TG-1001\", \"dateOfCare\": \"2026-11-20\"}");
        if (!e[0].equals("200")) throw new IllegalStateException(e[1]);
        System.out.printf("eligibility TG-1001: covered=%s by %s (product %s)%n",
            first(e[1], "covered").equals("true") ? "True" : "False",
            first(e[1], "mutuelleId"), first(e[1], "productId"));

        // Amounts: whole numbers in the currency's minor unit (F CFA has none:
        // 5000 is 5,000 F CFA); 64-bit integers come back as strings.
        String claim = """
            {"schemeId": "CNSS", "claimId": "EX-JAVA-1", "providerId": "CHU-SYLVANUS-OLYMPIO",
             "invoiceNumber": "F-EX-JAVA-1", "payee": "PAYEE_PROVIDER",
             "beneficiaryId": "TG-1001", "dateOfCare": "2026-11-20", "currency": "XOF",
             "lines": [{"actCode": "CS-GEN", "careCategory": "CARE_CATEGORY_CONSULTATION",
                        "quantity": 1, "billed": %d, "tariffBase": 5000, "schemeShare": 4000,
                        "schemeOutcome": "SCHEME_LINE_OUTCOME_COVERED"}]}
            """;
        String[] r = call("CoordinateClaim", String.format(claim, 5000));
        if (!r[0].equals("200")) throw new IllegalStateException(r[1]);
        System.out.printf("claim %s: %s%n", first(r[1], "claimId"), first(r[1], "state"));
        // One line here: the first value of each field is the line's (the
        // claim's totals come after its lines).
        long b = Long.parseLong(first(r[1], "billed"));
        long s = Long.parseLong(first(r[1], "schemeShare"));
        long m = Long.parseLong(first(r[1], "mutuelleShare"));
        long p = Long.parseLong(first(r[1], "patientShare"));
        if (s + m + p != b) throw new IllegalStateException("S + M + P != B");
        System.out.printf("  line 1 %s: B %d = S %d + M %d + P %d%n", first(r[1], "actCode"), b, s, m, p);

        // Same claim id, other content: refused. Each error detail has its
        // type and, under "debug", its content as JSON.
        String[] err = call("CoordinateClaim", String.format(claim, 6000));
        System.out.printf("modified resend: HTTP %s %s %s%n", err[0], first(err[1], "code"),
            String.join(" ", all(err[1], "reason")));
    }
}
