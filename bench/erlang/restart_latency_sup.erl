%% The supervisor of the restart-latency reference (see restart_latency.erl).
-module(restart_latency_sup).
-behaviour(supervisor).
-export([init/1]).

init(Intensity) ->
    Flags = #{strategy => one_for_one, intensity => Intensity, period => 3600},
    Child = #{id => child, start => {restart_latency, start_link, []}},
    {ok, {Flags, [Child]}}.
