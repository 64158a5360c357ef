<?php
// passerelle's JSON door from PHP with the curl extension (Debian: php-cli
// php-curl): eligibility, a claim, and a modified resend whose error
// details name the reason. No protobuf library is needed.
//
//   PASSERELLE_URL=https://localhost:50051 PASSERELLE_CERTS=.passerelle/certs php php_json.php

$url = getenv('PASSERELLE_URL') ?: 'https://localhost:50051';
$certs = getenv('PASSERELLE_CERTS') ?: '.passerelle/certs';

// POST /<package>.<Service>/<Method>; the scheme's identity is its client
// certificate. Returns [HTTP status, decoded JSON].
function call(string $method, array $body): array {
    global $url, $certs;
    $ch = curl_init("$url/passerelle.scheme.v1.SchemeService/$method");
    curl_setopt_array($ch, [
        CURLOPT_POST => true,
        CURLOPT_HTTPHEADER => ['Content-Type: application/json'],
        CURLOPT_POSTFIELDS => json_encode($body),
        CURLOPT_RETURNTRANSFER => true,
        CURLOPT_CAINFO => "$certs/ca.crt",
        CURLOPT_SSLCERT => "$certs/scheme-CNSS.crt",
        CURLOPT_SSLKEY => "$certs/scheme-CNSS.key",
        CURLOPT_TIMEOUT => 30,
    ]);
    $text = curl_exec($ch);
    if ($text === false) {
        fwrite(STDERR, 'curl: ' . curl_error($ch) . "\n");
        exit(1);
    }
    $status = curl_getinfo($ch, CURLINFO_RESPONSE_CODE);
    curl_close($ch);
    return [$status, json_decode($text, true)];
}

[$status, $e] = call('CheckEligibility',
    ['schemeId' => 'CNSS', 'beneficiaryId' => 'TG-1001', 'dateOfCare' => '2026-11-20']);
printf("eligibility TG-1001: covered=%s by %s (product %s)\n",
    $e['covered'] ? 'True' : 'False', $e['mutuelleId'], $e['product']['productId']);

$claim = [
    'schemeId' => 'CNSS', 'claimId' => 'EX-PHP-1', 'providerId' => 'CHU-SYLVANUS-OLYMPIO',
    'invoiceNumber' => 'F-EX-PHP-1', 'payee' => 'PAYEE_PROVIDER',
    'beneficiaryId' => 'TG-1001', 'dateOfCare' => '2026-11-20', 'currency' => 'XOF',
    // Amounts: whole numbers in the currency's minor unit (F CFA has none:
    // 5000 is 5,000 F CFA); 64-bit integers come back as strings.
    'lines' => [['actCode' => 'CS-GEN', 'careCategory' => 'CARE_CATEGORY_CONSULTATION',
                 'quantity' => 1, 'billed' => 5000, 'tariffBase' => 5000, 'schemeShare' => 4000,
                 'schemeOutcome' => 'SCHEME_LINE_OUTCOME_COVERED']],
];
[$status, $r] = call('CoordinateClaim', $claim);
if ($status !== 200) {
    fwrite(STDERR, json_encode($r) . "\n");
    exit(1);
}
printf("claim %s: %s\n", $r['claimId'], $r['state']);
foreach ($r['lines'] as $l) {
    $b = (int) $l['billed']; $s = (int) $l['schemeShare'];
    $m = (int) $l['mutuelleShare']; $p = (int) $l['patientShare'];
    // Checked in code, not with assert(): production PHP removes asserts
    // (zend.assertions = -1).
    if ($s + $m + $p !== $b) {
        fwrite(STDERR, "line {$l['sequence']}: S + M + P != B\n");
        exit(1);
    }
    printf("  line %d %s: B %d = S %d + M %d + P %d\n", $l['sequence'], $l['actCode'], $b, $s, $m, $p);
}

// Same claim id, other content: refused. Each error detail has its type and,
// under "debug", its content as JSON.
$claim['lines'][0]['billed'] = 6000;
[$status, $err] = call('CoordinateClaim', $claim);
$reasons = [];
foreach ($err['details'] ?? [] as $d) {
    if ($d['type'] === 'google.rpc.ErrorInfo') {
        $reasons[] = $d['debug']['reason'];
    }
}
printf("modified resend: HTTP %d %s %s\n", $status, $err['code'], implode(' ', $reasons));
