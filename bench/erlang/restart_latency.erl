%% The restart-latency workload of bench/compare.py on Erlang/OTP, as the reference:
%% a one_for_one supervisor over one gen_server; the client monitors the child, casts it
%% a crash, waits for the 'DOWN', asks the supervisor for the new child and calls it.
%% Reports are built and dropped (the default logger handler is removed), as in Python.
%% OTP's supervisor keeps its restart history in a list it filters on every restart, so
%% crashes run in rounds of 100, each under a fresh supervisor, to keep that list short.
%%
%%   erlc restart_latency.erl restart_latency_sup.erl
%%   erl +S 1 -noshell -s restart_latency main 1000
-module(restart_latency).
-behaviour(gen_server).
-export([main/1, start_link/0]).
-export([init/1, handle_call/3, handle_cast/2]).

-define(ROUND, 100).

start_link() -> gen_server:start_link(?MODULE, [], []).

init([]) -> {ok, 0}.

handle_call(ping, _From, State) -> {reply, pong, State}.

handle_cast(crash, _State) -> erlang:error(crash_on_purpose).

main([Count]) ->
    N = list_to_integer(atom_to_list(Count)),
    ok = logger:remove_handler(default),
    process_flag(trap_exit, true),
    Samples = lists:sort(rounds(N, [])),
    P50 = lists:nth(max(1, N div 2), Samples),
    P99 = lists:nth(max(1, N * 99 div 100), Samples),
    io:format("~w ~w ~s~n", [P50, P99, erlang:system_info(otp_release)]),
    halt().

rounds(0, Acc) -> Acc;
rounds(N, Acc) ->
    K = min(N, ?ROUND),
    {ok, Sup} = supervisor:start_link(restart_latency_sup, K + 1),
    Samples = crashes(Sup, K, Acc),
    unlink(Sup),
    exit(Sup, shutdown),
    rounds(N - K, Samples).

crashes(_Sup, 0, Acc) -> Acc;
crashes(Sup, K, Acc) ->
    [{child, Child, _, _}] = supervisor:which_children(Sup),
    T0 = erlang:monotonic_time(nanosecond),
    Ref = monitor(process, Child),
    gen_server:cast(Child, crash),
    receive {'DOWN', Ref, process, Child, _} -> ok end,
    [{child, New, _, _}] = supervisor:which_children(Sup),
    pong = gen_server:call(New, ping),
    T1 = erlang:monotonic_time(nanosecond),
    crashes(Sup, K - 1, [T1 - T0 | Acc]).
