#!/usr/bin/env perl
# A background worker for the example stack: processes a "job" every two seconds.
use strict;
use warnings;

$| = 1;
$SIG{TERM} = sub { print "worker: SIGTERM received, finishing\n"; exit 0 };
my $name = $ENV{AURELIA_SERVICE} // 'worker';
print "$name started\n";
my $i = 0;
while (1) {
    $i++;
    print "processed job $i\n";
    sleep 2;
}
