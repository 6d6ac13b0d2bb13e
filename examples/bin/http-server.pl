#!/usr/bin/env perl
# A tiny HTTP server for the example stack (Perl ships with macOS and every Debian/Ubuntu).
# Listens on 127.0.0.1:$PORT, answers /healthz with 200 "ok" and anything else with a greeting.
use strict;
use warnings;
use IO::Socket::INET;

$| = 1;
my $port = $ENV{PORT} or die "PORT is not set\n";
my $name = $ENV{AURELIA_SERVICE} // 'http-server';
my $greeting = $ENV{GREETING} // "hello from $name";
my $srv = IO::Socket::INET->new(
    LocalAddr => '127.0.0.1',
    LocalPort => $port,
    Listen    => 128,
    ReuseAddr => 1,
) or die "cannot listen on 127.0.0.1:$port: $!\n";
$SIG{TERM} = sub { print "$name: SIGTERM received, shutting down\n"; exit 0 };
print "$name listening on http://127.0.0.1:$port/\n";
while (1) {
    my $c = $srv->accept or next;
    my $req = <$c> // '';
    while (defined(my $line = <$c>)) { last if $line =~ /^\r?\n$/ }
    my ($path) = $req =~ m{^GET (\S+)};
    $path //= '/';
    my $body = $path eq '/healthz' ? "ok\n" : "$greeting\n";
    print $c "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
      . length($body) . "\r\nConnection: close\r\n\r\n$body";
    close $c;
    print "GET $path -> 200\n" unless $path eq '/healthz';
}
