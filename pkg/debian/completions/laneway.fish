# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_laneway_global_optspecs
    string join \n h/help V/version
end

function __fish_laneway_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_laneway_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_laneway_using_subcommand
    set -l cmd (__fish_laneway_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c laneway -n "__fish_laneway_needs_command" -s h -l help -d 'Print help'
complete -c laneway -n "__fish_laneway_needs_command" -s V -l version -d 'Print version'
complete -c laneway -n "__fish_laneway_needs_command" -f -a "init" -d 'Write a configuration that works at once (loopback ports, a spool under DIR, an API key, a bounce secret; with --domain a DKIM key and the DNS records to publish)'
complete -c laneway -n "__fish_laneway_needs_command" -f -a "serve" -d 'Run the daemon'
complete -c laneway -n "__fish_laneway_needs_command" -f -a "check-config" -d 'Check a configuration and report every problem found'
complete -c laneway -n "__fish_laneway_needs_command" -f -a "spool" -d 'Read the spool directly (works with the daemon running or stopped)'
complete -c laneway -n "__fish_laneway_needs_command" -f -a "hash-password" -d 'Hash a password for `[[smtp_user]] password_hash` (reads it from stdin)'
complete -c laneway -n "__fish_laneway_needs_command" -f -a "queue" -d 'Look at and act on the running daemon\'s queue (like postqueue/postsuper)'
complete -c laneway -n "__fish_laneway_needs_command" -f -a "top" -d 'A live view of the running daemon\'s lanes, refreshed every second (like top): queued/ready/deferred, in/out rates and oldest age per lane, the busiest destinations, holds and shaping rules; keys 0-9 show a lane, s/r suspend and resume a destination, q quits'
complete -c laneway -n "__fish_laneway_needs_command" -f -a "suppressions" -d 'The suppression list of the running daemon'
complete -c laneway -n "__fish_laneway_needs_command" -f -a "shaping" -d 'Provider shaping of the running daemon'
complete -c laneway -n "__fish_laneway_needs_command" -f -a "domain" -d 'Sender domains of the running daemon'
complete -c laneway -n "__fish_laneway_needs_command" -f -a "dkim" -d 'DKIM keys'
complete -c laneway -n "__fish_laneway_needs_command" -f -a "api-key" -d 'API keys'
complete -c laneway -n "__fish_laneway_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c laneway -n "__fish_laneway_using_subcommand init" -l domain -d 'A sender domain to sign and give a bounce domain' -r
complete -c laneway -n "__fish_laneway_using_subcommand init" -s h -l help -d 'Print help'
complete -c laneway -n "__fish_laneway_using_subcommand serve" -s c -l config -d 'Configuration file; without it the embedded default runs (SMTP on 127.0.0.1:2525, spool in ./spool)' -r -F
complete -c laneway -n "__fish_laneway_using_subcommand serve" -s h -l help -d 'Print help'
complete -c laneway -n "__fish_laneway_using_subcommand check-config" -s c -l config -d 'Configuration file (default: the embedded default)' -r -F
complete -c laneway -n "__fish_laneway_using_subcommand check-config" -s h -l help -d 'Print help'
complete -c laneway -n "__fish_laneway_using_subcommand spool; and not __fish_seen_subcommand_from stats help" -s h -l help -d 'Print help'
complete -c laneway -n "__fish_laneway_using_subcommand spool; and not __fish_seen_subcommand_from stats help" -f -a "stats" -d 'Count messages per lane'
complete -c laneway -n "__fish_laneway_using_subcommand spool; and not __fish_seen_subcommand_from stats help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c laneway -n "__fish_laneway_using_subcommand spool; and __fish_seen_subcommand_from stats" -s c -l config -d 'Configuration file naming the spool' -r -F
complete -c laneway -n "__fish_laneway_using_subcommand spool; and __fish_seen_subcommand_from stats" -l json -d 'Print JSON: {"total": N, "lanes": {"0": n0, …}}'
complete -c laneway -n "__fish_laneway_using_subcommand spool; and __fish_seen_subcommand_from stats" -s h -l help -d 'Print help'
complete -c laneway -n "__fish_laneway_using_subcommand spool; and __fish_seen_subcommand_from help" -f -a "stats" -d 'Count messages per lane'
complete -c laneway -n "__fish_laneway_using_subcommand spool; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c laneway -n "__fish_laneway_using_subcommand hash-password" -s h -l help -d 'Print help'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and not __fish_seen_subcommand_from stats list show delete retry set-priority flush suspend resume drain drain-status trace help" -s c -l config -d 'Configuration file (finds the control socket in the spool directory)' -r -F
complete -c laneway -n "__fish_laneway_using_subcommand queue; and not __fish_seen_subcommand_from stats list show delete retry set-priority flush suspend resume drain drain-status trace help" -l url -d 'A remote API instead of the local control socket, e.g. http://10.0.0.5:8025' -r
complete -c laneway -n "__fish_laneway_using_subcommand queue; and not __fish_seen_subcommand_from stats list show delete retry set-priority flush suspend resume drain drain-status trace help" -l token -d 'Bearer token for --url (default: $LANEWAY_TOKEN)' -r
complete -c laneway -n "__fish_laneway_using_subcommand queue; and not __fish_seen_subcommand_from stats list show delete retry set-priority flush suspend resume drain drain-status trace help" -l json -d 'Print JSON instead of tables'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and not __fish_seen_subcommand_from stats list show delete retry set-priority flush suspend resume drain drain-status trace help" -s h -l help -d 'Print help'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and not __fish_seen_subcommand_from stats list show delete retry set-priority flush suspend resume drain drain-status trace help" -f -a "stats" -d 'Messages per lane, oldest ages, busiest destinations'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and not __fish_seen_subcommand_from stats list show delete retry set-priority flush suspend resume drain drain-status trace help" -f -a "list" -d 'List messages'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and not __fish_seen_subcommand_from stats list show delete retry set-priority flush suspend resume drain drain-status trace help" -f -a "show" -d 'One message in detail'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and not __fish_seen_subcommand_from stats list show delete retry set-priority flush suspend resume drain drain-status trace help" -f -a "delete" -d 'Remove a message from the queue'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and not __fish_seen_subcommand_from stats list show delete retry set-priority flush suspend resume drain drain-status trace help" -f -a "retry" -d 'Retry a deferred message now'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and not __fish_seen_subcommand_from stats list show delete retry set-priority flush suspend resume drain drain-status trace help" -f -a "set-priority" -d 'Move a message to another lane'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and not __fish_seen_subcommand_from stats list show delete retry set-priority flush suspend resume drain drain-status trace help" -f -a "flush" -d 'Retry every deferred message now'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and not __fish_seen_subcommand_from stats list show delete retry set-priority flush suspend resume drain drain-status trace help" -f -a "suspend" -d 'Stop deliveries to a domain\'s destination (mail stays queued)'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and not __fish_seen_subcommand_from stats list show delete retry set-priority flush suspend resume drain drain-status trace help" -f -a "resume" -d 'Resume deliveries to a domain\'s destination'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and not __fish_seen_subcommand_from stats list show delete retry set-priority flush suspend resume drain drain-status trace help" -f -a "drain" -d 'Hand every queued message to another node (to retire this one): each is removed here only once the other node has spooled it'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and not __fish_seen_subcommand_from stats list show delete retry set-priority flush suspend resume drain drain-status trace help" -f -a "drain-status" -d 'How the last drain went'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and not __fish_seen_subcommand_from stats list show delete retry set-priority flush suspend resume drain drain-status trace help" -f -a "trace" -d 'The whole story of a message (by queue id) or of a recipient (by address): received, each attempt, delivered or bounced — also after it left the queue (kept for [events] history)'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and not __fish_seen_subcommand_from stats list show delete retry set-priority flush suspend resume drain drain-status trace help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from stats" -s c -l config -d 'Configuration file (finds the control socket in the spool directory)' -r -F
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from stats" -l url -d 'A remote API instead of the local control socket, e.g. http://10.0.0.5:8025' -r
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from stats" -l token -d 'Bearer token for --url (default: $LANEWAY_TOKEN)' -r
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from stats" -l cluster -d 'Every node of the cluster, side by side'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from stats" -l json -d 'Print JSON instead of tables'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from stats" -s h -l help -d 'Print help'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from list" -l lane -d 'Only this lane' -r
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from list" -l domain -d 'Only messages with a recipient at this domain' -r
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from list" -l sender -d 'Only this envelope sender' -r
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from list" -l state -d 'Only this state (ready, deferred, active, resolving)' -r
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from list" -l limit -d 'At most this many' -r
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from list" -l cursor -d 'Continue after this id (from the previous page)' -r
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from list" -s c -l config -d 'Configuration file (finds the control socket in the spool directory)' -r -F
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from list" -l url -d 'A remote API instead of the local control socket, e.g. http://10.0.0.5:8025' -r
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from list" -l token -d 'Bearer token for --url (default: $LANEWAY_TOKEN)' -r
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from list" -l json -d 'Print JSON instead of tables'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from show" -s c -l config -d 'Configuration file (finds the control socket in the spool directory)' -r -F
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from show" -l url -d 'A remote API instead of the local control socket, e.g. http://10.0.0.5:8025' -r
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from show" -l token -d 'Bearer token for --url (default: $LANEWAY_TOKEN)' -r
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from show" -l json -d 'Print JSON instead of tables'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from delete" -s c -l config -d 'Configuration file (finds the control socket in the spool directory)' -r -F
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from delete" -l url -d 'A remote API instead of the local control socket, e.g. http://10.0.0.5:8025' -r
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from delete" -l token -d 'Bearer token for --url (default: $LANEWAY_TOKEN)' -r
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from delete" -l bounce -d 'Also send the sender a DSN for the recipients not yet delivered'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from delete" -l json -d 'Print JSON instead of tables'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from delete" -s h -l help -d 'Print help'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from retry" -s c -l config -d 'Configuration file (finds the control socket in the spool directory)' -r -F
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from retry" -l url -d 'A remote API instead of the local control socket, e.g. http://10.0.0.5:8025' -r
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from retry" -l token -d 'Bearer token for --url (default: $LANEWAY_TOKEN)' -r
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from retry" -l json -d 'Print JSON instead of tables'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from retry" -s h -l help -d 'Print help'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from set-priority" -s c -l config -d 'Configuration file (finds the control socket in the spool directory)' -r -F
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from set-priority" -l url -d 'A remote API instead of the local control socket, e.g. http://10.0.0.5:8025' -r
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from set-priority" -l token -d 'Bearer token for --url (default: $LANEWAY_TOKEN)' -r
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from set-priority" -l json -d 'Print JSON instead of tables'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from set-priority" -s h -l help -d 'Print help'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from flush" -s c -l config -d 'Configuration file (finds the control socket in the spool directory)' -r -F
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from flush" -l url -d 'A remote API instead of the local control socket, e.g. http://10.0.0.5:8025' -r
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from flush" -l token -d 'Bearer token for --url (default: $LANEWAY_TOKEN)' -r
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from flush" -l json -d 'Print JSON instead of tables'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from flush" -s h -l help -d 'Print help'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from suspend" -s c -l config -d 'Configuration file (finds the control socket in the spool directory)' -r -F
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from suspend" -l url -d 'A remote API instead of the local control socket, e.g. http://10.0.0.5:8025' -r
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from suspend" -l token -d 'Bearer token for --url (default: $LANEWAY_TOKEN)' -r
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from suspend" -l json -d 'Print JSON instead of tables'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from suspend" -s h -l help -d 'Print help'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from resume" -s c -l config -d 'Configuration file (finds the control socket in the spool directory)' -r -F
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from resume" -l url -d 'A remote API instead of the local control socket, e.g. http://10.0.0.5:8025' -r
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from resume" -l token -d 'Bearer token for --url (default: $LANEWAY_TOKEN)' -r
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from resume" -l json -d 'Print JSON instead of tables'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from resume" -s h -l help -d 'Print help'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from drain" -l to -d 'The other node\'s API, e.g. http://10.0.0.2:8025' -r
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from drain" -l key -d 'An API key of the other node with the admin scope (default: $LANEWAY_DRAIN_KEY)' -r
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from drain" -s c -l config -d 'Configuration file (finds the control socket in the spool directory)' -r -F
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from drain" -l url -d 'A remote API instead of the local control socket, e.g. http://10.0.0.5:8025' -r
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from drain" -l token -d 'Bearer token for --url (default: $LANEWAY_TOKEN)' -r
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from drain" -l no-wait -d 'Start it and return; `laneway queue drain-status` follows it'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from drain" -l json -d 'Print JSON instead of tables'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from drain" -s h -l help -d 'Print help'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from drain-status" -s c -l config -d 'Configuration file (finds the control socket in the spool directory)' -r -F
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from drain-status" -l url -d 'A remote API instead of the local control socket, e.g. http://10.0.0.5:8025' -r
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from drain-status" -l token -d 'Bearer token for --url (default: $LANEWAY_TOKEN)' -r
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from drain-status" -l json -d 'Print JSON instead of tables'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from drain-status" -s h -l help -d 'Print help'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from trace" -l limit -d 'At most this many events' -r
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from trace" -s c -l config -d 'Configuration file (finds the control socket in the spool directory)' -r -F
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from trace" -l url -d 'A remote API instead of the local control socket, e.g. http://10.0.0.5:8025' -r
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from trace" -l token -d 'Bearer token for --url (default: $LANEWAY_TOKEN)' -r
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from trace" -l json -d 'Print JSON instead of tables'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from trace" -s h -l help -d 'Print help'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from help" -f -a "stats" -d 'Messages per lane, oldest ages, busiest destinations'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from help" -f -a "list" -d 'List messages'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from help" -f -a "show" -d 'One message in detail'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from help" -f -a "delete" -d 'Remove a message from the queue'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from help" -f -a "retry" -d 'Retry a deferred message now'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from help" -f -a "set-priority" -d 'Move a message to another lane'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from help" -f -a "flush" -d 'Retry every deferred message now'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from help" -f -a "suspend" -d 'Stop deliveries to a domain\'s destination (mail stays queued)'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from help" -f -a "resume" -d 'Resume deliveries to a domain\'s destination'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from help" -f -a "drain" -d 'Hand every queued message to another node (to retire this one): each is removed here only once the other node has spooled it'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from help" -f -a "drain-status" -d 'How the last drain went'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from help" -f -a "trace" -d 'The whole story of a message (by queue id) or of a recipient (by address): received, each attempt, delivered or bounced — also after it left the queue (kept for [events] history)'
complete -c laneway -n "__fish_laneway_using_subcommand queue; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c laneway -n "__fish_laneway_using_subcommand top" -s c -l config -d 'Configuration file (finds the control socket in the spool directory)' -r -F
complete -c laneway -n "__fish_laneway_using_subcommand top" -l url -d 'A remote API instead of the local control socket, e.g. http://10.0.0.5:8025' -r
complete -c laneway -n "__fish_laneway_using_subcommand top" -l token -d 'Bearer token for --url (default: $LANEWAY_TOKEN)' -r
complete -c laneway -n "__fish_laneway_using_subcommand top" -l json -d 'Print JSON instead of tables'
complete -c laneway -n "__fish_laneway_using_subcommand top" -s h -l help -d 'Print help'
complete -c laneway -n "__fish_laneway_using_subcommand suppressions; and not __fish_seen_subcommand_from list add remove help" -s c -l config -d 'Configuration file (finds the control socket in the spool directory)' -r -F
complete -c laneway -n "__fish_laneway_using_subcommand suppressions; and not __fish_seen_subcommand_from list add remove help" -l url -d 'A remote API instead of the local control socket, e.g. http://10.0.0.5:8025' -r
complete -c laneway -n "__fish_laneway_using_subcommand suppressions; and not __fish_seen_subcommand_from list add remove help" -l token -d 'Bearer token for --url (default: $LANEWAY_TOKEN)' -r
complete -c laneway -n "__fish_laneway_using_subcommand suppressions; and not __fish_seen_subcommand_from list add remove help" -l json -d 'Print JSON instead of tables'
complete -c laneway -n "__fish_laneway_using_subcommand suppressions; and not __fish_seen_subcommand_from list add remove help" -s h -l help -d 'Print help'
complete -c laneway -n "__fish_laneway_using_subcommand suppressions; and not __fish_seen_subcommand_from list add remove help" -f -a "list" -d 'List suppressed recipients'
complete -c laneway -n "__fish_laneway_using_subcommand suppressions; and not __fish_seen_subcommand_from list add remove help" -f -a "add" -d 'Suppress a recipient for a sender domain'
complete -c laneway -n "__fish_laneway_using_subcommand suppressions; and not __fish_seen_subcommand_from list add remove help" -f -a "remove" -d 'Lift a suppression'
complete -c laneway -n "__fish_laneway_using_subcommand suppressions; and not __fish_seen_subcommand_from list add remove help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c laneway -n "__fish_laneway_using_subcommand suppressions; and __fish_seen_subcommand_from list" -l sender-domain -d 'Only this sender domain' -r
complete -c laneway -n "__fish_laneway_using_subcommand suppressions; and __fish_seen_subcommand_from list" -l limit -d 'At most this many' -r
complete -c laneway -n "__fish_laneway_using_subcommand suppressions; and __fish_seen_subcommand_from list" -l cursor -d 'Continue from a previous page' -r
complete -c laneway -n "__fish_laneway_using_subcommand suppressions; and __fish_seen_subcommand_from list" -s c -l config -d 'Configuration file (finds the control socket in the spool directory)' -r -F
complete -c laneway -n "__fish_laneway_using_subcommand suppressions; and __fish_seen_subcommand_from list" -l url -d 'A remote API instead of the local control socket, e.g. http://10.0.0.5:8025' -r
complete -c laneway -n "__fish_laneway_using_subcommand suppressions; and __fish_seen_subcommand_from list" -l token -d 'Bearer token for --url (default: $LANEWAY_TOKEN)' -r
complete -c laneway -n "__fish_laneway_using_subcommand suppressions; and __fish_seen_subcommand_from list" -l json -d 'Print JSON instead of tables'
complete -c laneway -n "__fish_laneway_using_subcommand suppressions; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c laneway -n "__fish_laneway_using_subcommand suppressions; and __fish_seen_subcommand_from add" -l sender-domain -d 'The sender domain' -r
complete -c laneway -n "__fish_laneway_using_subcommand suppressions; and __fish_seen_subcommand_from add" -l reason -d 'Why' -r
complete -c laneway -n "__fish_laneway_using_subcommand suppressions; and __fish_seen_subcommand_from add" -s c -l config -d 'Configuration file (finds the control socket in the spool directory)' -r -F
complete -c laneway -n "__fish_laneway_using_subcommand suppressions; and __fish_seen_subcommand_from add" -l url -d 'A remote API instead of the local control socket, e.g. http://10.0.0.5:8025' -r
complete -c laneway -n "__fish_laneway_using_subcommand suppressions; and __fish_seen_subcommand_from add" -l token -d 'Bearer token for --url (default: $LANEWAY_TOKEN)' -r
complete -c laneway -n "__fish_laneway_using_subcommand suppressions; and __fish_seen_subcommand_from add" -l bulk-only -d 'Only for bulk lanes (below [auth] transactional_min_lane)'
complete -c laneway -n "__fish_laneway_using_subcommand suppressions; and __fish_seen_subcommand_from add" -l json -d 'Print JSON instead of tables'
complete -c laneway -n "__fish_laneway_using_subcommand suppressions; and __fish_seen_subcommand_from add" -s h -l help -d 'Print help'
complete -c laneway -n "__fish_laneway_using_subcommand suppressions; and __fish_seen_subcommand_from remove" -l sender-domain -d 'The sender domain' -r
complete -c laneway -n "__fish_laneway_using_subcommand suppressions; and __fish_seen_subcommand_from remove" -s c -l config -d 'Configuration file (finds the control socket in the spool directory)' -r -F
complete -c laneway -n "__fish_laneway_using_subcommand suppressions; and __fish_seen_subcommand_from remove" -l url -d 'A remote API instead of the local control socket, e.g. http://10.0.0.5:8025' -r
complete -c laneway -n "__fish_laneway_using_subcommand suppressions; and __fish_seen_subcommand_from remove" -l token -d 'Bearer token for --url (default: $LANEWAY_TOKEN)' -r
complete -c laneway -n "__fish_laneway_using_subcommand suppressions; and __fish_seen_subcommand_from remove" -l json -d 'Print JSON instead of tables'
complete -c laneway -n "__fish_laneway_using_subcommand suppressions; and __fish_seen_subcommand_from remove" -s h -l help -d 'Print help'
complete -c laneway -n "__fish_laneway_using_subcommand suppressions; and __fish_seen_subcommand_from help" -f -a "list" -d 'List suppressed recipients'
complete -c laneway -n "__fish_laneway_using_subcommand suppressions; and __fish_seen_subcommand_from help" -f -a "add" -d 'Suppress a recipient for a sender domain'
complete -c laneway -n "__fish_laneway_using_subcommand suppressions; and __fish_seen_subcommand_from help" -f -a "remove" -d 'Lift a suppression'
complete -c laneway -n "__fish_laneway_using_subcommand suppressions; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c laneway -n "__fish_laneway_using_subcommand shaping; and not __fish_seen_subcommand_from show clear help" -s c -l config -d 'Configuration file (finds the control socket in the spool directory)' -r -F
complete -c laneway -n "__fish_laneway_using_subcommand shaping; and not __fish_seen_subcommand_from show clear help" -l url -d 'A remote API instead of the local control socket, e.g. http://10.0.0.5:8025' -r
complete -c laneway -n "__fish_laneway_using_subcommand shaping; and not __fish_seen_subcommand_from show clear help" -l token -d 'Bearer token for --url (default: $LANEWAY_TOKEN)' -r
complete -c laneway -n "__fish_laneway_using_subcommand shaping; and not __fish_seen_subcommand_from show clear help" -l json -d 'Print JSON instead of tables'
complete -c laneway -n "__fish_laneway_using_subcommand shaping; and not __fish_seen_subcommand_from show clear help" -s h -l help -d 'Print help'
complete -c laneway -n "__fish_laneway_using_subcommand shaping; and not __fish_seen_subcommand_from show clear help" -f -a "show" -d 'The providers (matched by MX host suffix) and domains of the shaping files, with their effective limits, and the automation rules holding a provider now'
complete -c laneway -n "__fish_laneway_using_subcommand shaping; and not __fish_seen_subcommand_from show clear help" -f -a "clear" -d 'End the automation rule holding a provider now (its lanes get the normal limits at once; on every node with [cluster])'
complete -c laneway -n "__fish_laneway_using_subcommand shaping; and not __fish_seen_subcommand_from show clear help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c laneway -n "__fish_laneway_using_subcommand shaping; and __fish_seen_subcommand_from show" -s c -l config -d 'Configuration file (finds the control socket in the spool directory)' -r -F
complete -c laneway -n "__fish_laneway_using_subcommand shaping; and __fish_seen_subcommand_from show" -l url -d 'A remote API instead of the local control socket, e.g. http://10.0.0.5:8025' -r
complete -c laneway -n "__fish_laneway_using_subcommand shaping; and __fish_seen_subcommand_from show" -l token -d 'Bearer token for --url (default: $LANEWAY_TOKEN)' -r
complete -c laneway -n "__fish_laneway_using_subcommand shaping; and __fish_seen_subcommand_from show" -l json -d 'Print JSON instead of tables'
complete -c laneway -n "__fish_laneway_using_subcommand shaping; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c laneway -n "__fish_laneway_using_subcommand shaping; and __fish_seen_subcommand_from clear" -s c -l config -d 'Configuration file (finds the control socket in the spool directory)' -r -F
complete -c laneway -n "__fish_laneway_using_subcommand shaping; and __fish_seen_subcommand_from clear" -l url -d 'A remote API instead of the local control socket, e.g. http://10.0.0.5:8025' -r
complete -c laneway -n "__fish_laneway_using_subcommand shaping; and __fish_seen_subcommand_from clear" -l token -d 'Bearer token for --url (default: $LANEWAY_TOKEN)' -r
complete -c laneway -n "__fish_laneway_using_subcommand shaping; and __fish_seen_subcommand_from clear" -l json -d 'Print JSON instead of tables'
complete -c laneway -n "__fish_laneway_using_subcommand shaping; and __fish_seen_subcommand_from clear" -s h -l help -d 'Print help'
complete -c laneway -n "__fish_laneway_using_subcommand shaping; and __fish_seen_subcommand_from help" -f -a "show" -d 'The providers (matched by MX host suffix) and domains of the shaping files, with their effective limits, and the automation rules holding a provider now'
complete -c laneway -n "__fish_laneway_using_subcommand shaping; and __fish_seen_subcommand_from help" -f -a "clear" -d 'End the automation rule holding a provider now (its lanes get the normal limits at once; on every node with [cluster])'
complete -c laneway -n "__fish_laneway_using_subcommand shaping; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c laneway -n "__fish_laneway_using_subcommand domain; and not __fish_seen_subcommand_from check help" -s c -l config -d 'Configuration file (finds the control socket in the spool directory)' -r -F
complete -c laneway -n "__fish_laneway_using_subcommand domain; and not __fish_seen_subcommand_from check help" -l url -d 'A remote API instead of the local control socket, e.g. http://10.0.0.5:8025' -r
complete -c laneway -n "__fish_laneway_using_subcommand domain; and not __fish_seen_subcommand_from check help" -l token -d 'Bearer token for --url (default: $LANEWAY_TOKEN)' -r
complete -c laneway -n "__fish_laneway_using_subcommand domain; and not __fish_seen_subcommand_from check help" -l json -d 'Print JSON instead of tables'
complete -c laneway -n "__fish_laneway_using_subcommand domain; and not __fish_seen_subcommand_from check help" -s h -l help -d 'Print help'
complete -c laneway -n "__fish_laneway_using_subcommand domain; and not __fish_seen_subcommand_from check help" -f -a "check" -d 'Is the DNS of a [[domain]] right for this relay? Bounce MX, SPF for every egress address, DKIM keys, DMARC alignment, PTR/FCrDNS against the HELO names, MTA-STS and TLS-RPT: each ok, wrong (with the record that would be right) or missing. Exit status 1 if any required check is not ok'
complete -c laneway -n "__fish_laneway_using_subcommand domain; and not __fish_seen_subcommand_from check help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c laneway -n "__fish_laneway_using_subcommand domain; and __fish_seen_subcommand_from check" -s c -l config -d 'Configuration file (finds the control socket in the spool directory)' -r -F
complete -c laneway -n "__fish_laneway_using_subcommand domain; and __fish_seen_subcommand_from check" -l url -d 'A remote API instead of the local control socket, e.g. http://10.0.0.5:8025' -r
complete -c laneway -n "__fish_laneway_using_subcommand domain; and __fish_seen_subcommand_from check" -l token -d 'Bearer token for --url (default: $LANEWAY_TOKEN)' -r
complete -c laneway -n "__fish_laneway_using_subcommand domain; and __fish_seen_subcommand_from check" -l json -d 'Print JSON instead of tables'
complete -c laneway -n "__fish_laneway_using_subcommand domain; and __fish_seen_subcommand_from check" -s h -l help -d 'Print help'
complete -c laneway -n "__fish_laneway_using_subcommand domain; and __fish_seen_subcommand_from help" -f -a "check" -d 'Is the DNS of a [[domain]] right for this relay? Bounce MX, SPF for every egress address, DKIM keys, DMARC alignment, PTR/FCrDNS against the HELO names, MTA-STS and TLS-RPT: each ok, wrong (with the record that would be right) or missing. Exit status 1 if any required check is not ok'
complete -c laneway -n "__fish_laneway_using_subcommand domain; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c laneway -n "__fish_laneway_using_subcommand dkim; and not __fish_seen_subcommand_from keygen help" -s h -l help -d 'Print help'
complete -c laneway -n "__fish_laneway_using_subcommand dkim; and not __fish_seen_subcommand_from keygen help" -f -a "keygen" -d 'Make a signing key (PEM, mode 0600) and print its DNS TXT record'
complete -c laneway -n "__fish_laneway_using_subcommand dkim; and not __fish_seen_subcommand_from keygen help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c laneway -n "__fish_laneway_using_subcommand dkim; and __fish_seen_subcommand_from keygen" -l domain -d 'The signing domain (d=)' -r
complete -c laneway -n "__fish_laneway_using_subcommand dkim; and __fish_seen_subcommand_from keygen" -l selector -d 'The selector (s=)' -r
complete -c laneway -n "__fish_laneway_using_subcommand dkim; and __fish_seen_subcommand_from keygen" -l algorithm -d 'rsa-sha256 (2048 bits) or ed25519-sha256' -r
complete -c laneway -n "__fish_laneway_using_subcommand dkim; and __fish_seen_subcommand_from keygen" -l out -d 'Where to write the private key' -r -F
complete -c laneway -n "__fish_laneway_using_subcommand dkim; and __fish_seen_subcommand_from keygen" -s h -l help -d 'Print help'
complete -c laneway -n "__fish_laneway_using_subcommand dkim; and __fish_seen_subcommand_from help" -f -a "keygen" -d 'Make a signing key (PEM, mode 0600) and print its DNS TXT record'
complete -c laneway -n "__fish_laneway_using_subcommand dkim; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c laneway -n "__fish_laneway_using_subcommand api-key; and not __fish_seen_subcommand_from new help" -s h -l help -d 'Print help'
complete -c laneway -n "__fish_laneway_using_subcommand api-key; and not __fish_seen_subcommand_from new help" -f -a "new" -d 'Make a new token and print the [[api.key]] lines for it'
complete -c laneway -n "__fish_laneway_using_subcommand api-key; and not __fish_seen_subcommand_from new help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c laneway -n "__fish_laneway_using_subcommand api-key; and __fish_seen_subcommand_from new" -l name -d 'The key\'s name' -r
complete -c laneway -n "__fish_laneway_using_subcommand api-key; and __fish_seen_subcommand_from new" -l scopes -d 'Scopes, comma-separated: send, admin' -r
complete -c laneway -n "__fish_laneway_using_subcommand api-key; and __fish_seen_subcommand_from new" -s h -l help -d 'Print help'
complete -c laneway -n "__fish_laneway_using_subcommand api-key; and __fish_seen_subcommand_from help" -f -a "new" -d 'Make a new token and print the [[api.key]] lines for it'
complete -c laneway -n "__fish_laneway_using_subcommand api-key; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c laneway -n "__fish_laneway_using_subcommand help; and not __fish_seen_subcommand_from init serve check-config spool hash-password queue top suppressions shaping domain dkim api-key help" -f -a "init" -d 'Write a configuration that works at once (loopback ports, a spool under DIR, an API key, a bounce secret; with --domain a DKIM key and the DNS records to publish)'
complete -c laneway -n "__fish_laneway_using_subcommand help; and not __fish_seen_subcommand_from init serve check-config spool hash-password queue top suppressions shaping domain dkim api-key help" -f -a "serve" -d 'Run the daemon'
complete -c laneway -n "__fish_laneway_using_subcommand help; and not __fish_seen_subcommand_from init serve check-config spool hash-password queue top suppressions shaping domain dkim api-key help" -f -a "check-config" -d 'Check a configuration and report every problem found'
complete -c laneway -n "__fish_laneway_using_subcommand help; and not __fish_seen_subcommand_from init serve check-config spool hash-password queue top suppressions shaping domain dkim api-key help" -f -a "spool" -d 'Read the spool directly (works with the daemon running or stopped)'
complete -c laneway -n "__fish_laneway_using_subcommand help; and not __fish_seen_subcommand_from init serve check-config spool hash-password queue top suppressions shaping domain dkim api-key help" -f -a "hash-password" -d 'Hash a password for `[[smtp_user]] password_hash` (reads it from stdin)'
complete -c laneway -n "__fish_laneway_using_subcommand help; and not __fish_seen_subcommand_from init serve check-config spool hash-password queue top suppressions shaping domain dkim api-key help" -f -a "queue" -d 'Look at and act on the running daemon\'s queue (like postqueue/postsuper)'
complete -c laneway -n "__fish_laneway_using_subcommand help; and not __fish_seen_subcommand_from init serve check-config spool hash-password queue top suppressions shaping domain dkim api-key help" -f -a "top" -d 'A live view of the running daemon\'s lanes, refreshed every second (like top): queued/ready/deferred, in/out rates and oldest age per lane, the busiest destinations, holds and shaping rules; keys 0-9 show a lane, s/r suspend and resume a destination, q quits'
complete -c laneway -n "__fish_laneway_using_subcommand help; and not __fish_seen_subcommand_from init serve check-config spool hash-password queue top suppressions shaping domain dkim api-key help" -f -a "suppressions" -d 'The suppression list of the running daemon'
complete -c laneway -n "__fish_laneway_using_subcommand help; and not __fish_seen_subcommand_from init serve check-config spool hash-password queue top suppressions shaping domain dkim api-key help" -f -a "shaping" -d 'Provider shaping of the running daemon'
complete -c laneway -n "__fish_laneway_using_subcommand help; and not __fish_seen_subcommand_from init serve check-config spool hash-password queue top suppressions shaping domain dkim api-key help" -f -a "domain" -d 'Sender domains of the running daemon'
complete -c laneway -n "__fish_laneway_using_subcommand help; and not __fish_seen_subcommand_from init serve check-config spool hash-password queue top suppressions shaping domain dkim api-key help" -f -a "dkim" -d 'DKIM keys'
complete -c laneway -n "__fish_laneway_using_subcommand help; and not __fish_seen_subcommand_from init serve check-config spool hash-password queue top suppressions shaping domain dkim api-key help" -f -a "api-key" -d 'API keys'
complete -c laneway -n "__fish_laneway_using_subcommand help; and not __fish_seen_subcommand_from init serve check-config spool hash-password queue top suppressions shaping domain dkim api-key help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c laneway -n "__fish_laneway_using_subcommand help; and __fish_seen_subcommand_from spool" -f -a "stats" -d 'Count messages per lane'
complete -c laneway -n "__fish_laneway_using_subcommand help; and __fish_seen_subcommand_from queue" -f -a "stats" -d 'Messages per lane, oldest ages, busiest destinations'
complete -c laneway -n "__fish_laneway_using_subcommand help; and __fish_seen_subcommand_from queue" -f -a "list" -d 'List messages'
complete -c laneway -n "__fish_laneway_using_subcommand help; and __fish_seen_subcommand_from queue" -f -a "show" -d 'One message in detail'
complete -c laneway -n "__fish_laneway_using_subcommand help; and __fish_seen_subcommand_from queue" -f -a "delete" -d 'Remove a message from the queue'
complete -c laneway -n "__fish_laneway_using_subcommand help; and __fish_seen_subcommand_from queue" -f -a "retry" -d 'Retry a deferred message now'
complete -c laneway -n "__fish_laneway_using_subcommand help; and __fish_seen_subcommand_from queue" -f -a "set-priority" -d 'Move a message to another lane'
complete -c laneway -n "__fish_laneway_using_subcommand help; and __fish_seen_subcommand_from queue" -f -a "flush" -d 'Retry every deferred message now'
complete -c laneway -n "__fish_laneway_using_subcommand help; and __fish_seen_subcommand_from queue" -f -a "suspend" -d 'Stop deliveries to a domain\'s destination (mail stays queued)'
complete -c laneway -n "__fish_laneway_using_subcommand help; and __fish_seen_subcommand_from queue" -f -a "resume" -d 'Resume deliveries to a domain\'s destination'
complete -c laneway -n "__fish_laneway_using_subcommand help; and __fish_seen_subcommand_from queue" -f -a "drain" -d 'Hand every queued message to another node (to retire this one): each is removed here only once the other node has spooled it'
complete -c laneway -n "__fish_laneway_using_subcommand help; and __fish_seen_subcommand_from queue" -f -a "drain-status" -d 'How the last drain went'
complete -c laneway -n "__fish_laneway_using_subcommand help; and __fish_seen_subcommand_from queue" -f -a "trace" -d 'The whole story of a message (by queue id) or of a recipient (by address): received, each attempt, delivered or bounced — also after it left the queue (kept for [events] history)'
complete -c laneway -n "__fish_laneway_using_subcommand help; and __fish_seen_subcommand_from suppressions" -f -a "list" -d 'List suppressed recipients'
complete -c laneway -n "__fish_laneway_using_subcommand help; and __fish_seen_subcommand_from suppressions" -f -a "add" -d 'Suppress a recipient for a sender domain'
complete -c laneway -n "__fish_laneway_using_subcommand help; and __fish_seen_subcommand_from suppressions" -f -a "remove" -d 'Lift a suppression'
complete -c laneway -n "__fish_laneway_using_subcommand help; and __fish_seen_subcommand_from shaping" -f -a "show" -d 'The providers (matched by MX host suffix) and domains of the shaping files, with their effective limits, and the automation rules holding a provider now'
complete -c laneway -n "__fish_laneway_using_subcommand help; and __fish_seen_subcommand_from shaping" -f -a "clear" -d 'End the automation rule holding a provider now (its lanes get the normal limits at once; on every node with [cluster])'
complete -c laneway -n "__fish_laneway_using_subcommand help; and __fish_seen_subcommand_from domain" -f -a "check" -d 'Is the DNS of a [[domain]] right for this relay? Bounce MX, SPF for every egress address, DKIM keys, DMARC alignment, PTR/FCrDNS against the HELO names, MTA-STS and TLS-RPT: each ok, wrong (with the record that would be right) or missing. Exit status 1 if any required check is not ok'
complete -c laneway -n "__fish_laneway_using_subcommand help; and __fish_seen_subcommand_from dkim" -f -a "keygen" -d 'Make a signing key (PEM, mode 0600) and print its DNS TXT record'
complete -c laneway -n "__fish_laneway_using_subcommand help; and __fish_seen_subcommand_from api-key" -f -a "new" -d 'Make a new token and print the [[api.key]] lines for it'
