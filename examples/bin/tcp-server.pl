#!/usr/bin/env perl
# Stands in for a database in the example stack: accepts TCP connections on 127.0.0.1:$PORT.
use strict;
use warnings;
use IO::Socket::INET;

$| = 1;
my $port = $ENV{PORT} or die "PORT is not set\n";
my $srv = IO::Socket::INET->new(
    LocalAddr => '127.0.0.1',
    LocalPort => $port,
    Listen    => 128,
    ReuseAddr => 1,
) or die "cannot listen on 127.0.0.1:$port: $!\n";
$SIG{TERM} = sub { print "db: SIGTERM received, closing\n"; exit 0 };
print "db accepting connections on 127.0.0.1:$port\n";
while (1) {
    my $c = $srv->accept or next;
    close $c;
}
