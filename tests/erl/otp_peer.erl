%% The Erlang side of the distribution interop tests: an echo gen_server, and a control
%% process that does what a test asks of it (call, cast, link, monitor, exit) and reports
%% the outcome back to the asking Python process.
-module(otp_peer).
-behaviour(gen_server).
-export([start/0, init/1, handle_call/3, handle_cast/2, handle_info/2]).

start() ->
    {ok, _} = gen_server:start({local, echo_srv}, ?MODULE, [], []),
    register(control, spawn(fun control/0)),
    ok.

init([]) -> {ok, #{}}.

handle_call(state, _From, State) -> {reply, State, State};
handle_call({stop, Reason}, _From, State) -> {stop, Reason, ok, State};
handle_call({sleep, Ms}, _From, State) -> timer:sleep(Ms), {reply, slept, State};
handle_call(Req, _From, State) -> {reply, {echo, Req}, State}.

handle_cast({tell, To, Msg}, State) -> To ! {echoed, Msg}, {noreply, State};
handle_cast(Msg, State) -> {noreply, State#{last_cast => Msg}}.

handle_info(_Msg, State) -> {noreply, State}.

control() ->
    receive
        {From, Tag, What} ->
            Self = self(),
            spawn(fun() -> From ! {Tag, run(What, Self)} end),
            control()
    end.

run({call, Dest, Req}, _) -> catch gen_server:call(Dest, Req, 2000);
run({cast, Dest, Msg}, _) -> gen_server:cast(Dest, Msg);
run({send, Dest, Msg}, _) -> Dest ! Msg, sent;
run({ping, Node}, _) -> net_adm:ping(Node);
run({spawn_linked_to, Pid, ReportTo}, _) ->
    %% a process that traps exits, links to Pid, and reports every message it gets to
    %% ReportTo; {exit, R} ends it with R
    Parent = self(),
    Child = spawn(fun() ->
        process_flag(trap_exit, true),
        link(Pid),
        Parent ! linked,
        linked_loop(ReportTo)
    end),
    receive linked -> Child end;
run({monitor, Target, ReportTo}, _) ->
    spawn(fun() ->
        Ref = erlang:monitor(process, Target),
        ReportTo ! {monitoring, self()},
        receive {'DOWN', Ref, process, Obj, Reason} -> ReportTo ! {down, Obj, Reason} end
    end);
run({spawn_waiting}, _) ->
    spawn(fun() -> receive {exit, R} -> exit(R) end end);
run({exit, Pid, Reason}, _) -> exit(Pid, Reason), done;
run({is_alive, Pid}, _) -> rpc:call(node(Pid), erlang, is_process_alive, [Pid]);
run({erpc, Node, M, F, A}, _) -> run_rpc(Node, M, F, A);
run({rpc, Node, M, F, A}, _) -> rpc:call(Node, M, F, A, 5000);
run({erpc_cast, Node, M, F, A}, _) -> erpc:cast(Node, M, F, A);
run({bench_call, Dest, N}, _) ->
    %% N sequential gen_server calls to Dest; the microseconds they took
    {Micros, ok} = timer:tc(fun() -> bench_calls(Dest, N) end),
    Micros.

bench_calls(_, 0) -> ok;
bench_calls(Dest, N) -> _ = gen_server:call(Dest, N), bench_calls(Dest, N - 1).

linked_loop(ReportTo) ->
    receive
        {exit, R} -> exit(R);
        Other -> ReportTo ! {linked_got, Other}, linked_loop(ReportTo)
    end.

run_rpc(Node, M, F, A) -> try erpc:call(Node, M, F, A, 5000) catch C:R -> {caught, C, R} end.
